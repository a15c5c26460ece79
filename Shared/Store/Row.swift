public import Foundation

/// The rows of one result, copied out of the `PGresult` into one contiguous buffer, so
/// rows are plain values that outlive the connection and cross tasks freely.
final class ResultStorage: Sendable {
    let columnNames: [String]
    let columnTypes: [UInt32]
    let rowCount: Int
    /// For cell `row * columns + column`: start offset in `bytes` and length (-1 = NULL).
    let offsets: [Int]
    let lengths: [Int32]
    let bytes: [UInt8]

    init(columnNames: [String], columnTypes: [UInt32], rowCount: Int, offsets: [Int], lengths: [Int32], bytes: [UInt8]) {
        self.columnNames = columnNames
        self.columnTypes = columnTypes
        self.rowCount = rowCount
        self.offsets = offsets
        self.lengths = lengths
        self.bytes = bytes
    }

    func columnIndex(_ name: String) -> Int? { columnNames.firstIndex(of: name) }
}

/// One row of a query result.
///
/// ```swift
/// for row in try await store.query("SELECT id, restarts, last_seen FROM agents WHERE node = $1", [.text(node)]) {
///     let id: String = try row.decode("id")
///     let restarts = try row.decode("restarts", Int.self)
///     let lastSeen: Date? = try row.decode("last_seen")
/// }
/// ```
public struct Row: Sendable {
    let storage: ResultStorage
    let index: Int

    /// The column names, in order.
    public var columns: [String] { storage.columnNames }

    /// The number of columns.
    public var count: Int { storage.columnNames.count }

    /// The value of a column as a `PostgresValue` chosen from the column's type; nil when
    /// there is no such column (SQL NULL is `.null`).
    public subscript(_ column: String) -> PostgresValue? {
        guard let position = storage.columnIndex(column) else { return nil }
        return self[position]
    }

    /// The value of the column at `position` as a `PostgresValue` chosen from its type
    /// (numeric and unknown types come back as `.text`).
    public subscript(_ position: Int) -> PostgresValue {
        (try? decode(position, PostgresValue.self)) ?? .null
    }

    /// Whether the column is SQL NULL (false when there is no such column).
    public func isNull(_ column: String) -> Bool {
        guard let position = storage.columnIndex(column) else { return false }
        return storage.lengths[index * count + position] < 0
    }

    /// Decodes a column by name.
    /// - Throws: `StoreError` with code `decoding` when the column is missing, NULL for a
    ///   non-optional type, or not convertible.
    public func decode<T: PostgresDecodable>(_ column: String, _ type: T.Type = T.self) throws(StoreError) -> T {
        guard let position = storage.columnIndex(column) else {
            throw StoreError(.decoding, operation: "decode", context: "no column \"\(column)\"")
        }
        return try decode(position, type)
    }

    /// Decodes the column at `position` (0-based).
    /// - Throws: `StoreError` with code `decoding`.
    public func decode<T: PostgresDecodable>(_ position: Int, _ type: T.Type = T.self) throws(StoreError) -> T {
        guard position >= 0 && position < count else {
            throw StoreError(.decoding, operation: "decode", context: "no column at position \(position)")
        }
        let cell = index * count + position
        let length = storage.lengths[cell]
        if length < 0 {
            do throws(StoreError) {
                return try T.decodeNull()
            } catch {
                var error = error
                error.context = "column \"\(storage.columnNames[position])\": \(error.context ?? "NULL")"
                throw error
            }
        }
        let value = PostgresCell(storage: storage, offset: storage.offsets[cell], length: Int(length), column: position)
        return try T.decode(value)
    }
}

/// A non-NULL column value in PostgreSQL's text format, handed to
/// `PostgresDecodable.decode(_:)`.
public struct PostgresCell: Sendable {
    let storage: ResultStorage
    let offset: Int
    let length: Int
    let column: Int

    /// The column's name.
    public var columnName: String { storage.columnNames[column] }
    /// The column's type OID (`pg_type.oid`).
    public var typeOID: UInt32 { storage.columnTypes[column] }
    /// The text representation, as UTF-8.
    public var string: String { withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    /// Calls `body` with the raw text-format bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.bytes.withUnsafeBytes { all in try body(UnsafeRawBufferPointer(rebasing: all[offset..<offset + length])) }
    }

    /// A `decoding` error naming the column and the requested type (never the value).
    public func failure(_ type: Any.Type, file: String = #fileID, line: Int = #line) -> StoreError {
        StoreError(.decoding, operation: "decode", context: "column \"\(columnName)\" (type oid \(typeOID)) is not a valid \(type)",
            file: file, line: line)
    }
}

/// A Swift type a column can be decoded into.
///
/// Conform your own types by parsing `PostgresCell` (the text format):
/// ```swift
/// extension AgentID: PostgresDecodable {
///     public static func decode(_ cell: PostgresCell) throws(StoreError) -> AgentID {
///         guard let id = AgentID(cell.string) else { throw cell.failure(AgentID.self) }
///         return id
///     }
/// }
/// ```
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL value.
    static func decode(_ cell: PostgresCell) throws(StoreError) -> Self
    /// The value for SQL NULL; the default throws (only `Optional` and `PostgresValue`
    /// accept NULL).
    static func decodeNull() throws(StoreError) -> Self
}

extension PostgresDecodable {
    public static func decodeNull() throws(StoreError) -> Self {
        throw StoreError(.decoding, operation: "decode", context: "unexpected NULL for \(Self.self)")
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Wrapped? { try Wrapped.decode(cell) }
    public static func decodeNull() throws(StoreError) -> Wrapped? { nil }
}

extension String: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> String { cell.string }
}

extension Bool: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Bool {
        switch cell.string {
        case "t", "true": return true
        case "f", "false": return false
        default: throw cell.failure(Bool.self)
        }
    }
}

extension Int64: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Int64 {
        guard let value = Int64(cell.string) else { throw cell.failure(Int64.self) }
        return value
    }
}

extension Int: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Int {
        guard let value = Int(cell.string) else { throw cell.failure(Int.self) }
        return value
    }
}

extension Int32: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Int32 {
        guard let value = Int32(cell.string) else { throw cell.failure(Int32.self) }
        return value
    }
}

extension Int16: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Int16 {
        guard let value = Int16(cell.string) else { throw cell.failure(Int16.self) }
        return value
    }
}

extension Double: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Double {
        let text = cell.string
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard let value = Double(text), value.isFinite else { throw cell.failure(Double.self) }
            return value
        }
    }
}

extension Array: PostgresDecodable where Element == UInt8 {
    /// `bytea` in hex output format (`\x…`); any other column gives its UTF-8 text bytes.
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> [UInt8] {
        guard cell.typeOID == PostgresType.bytea else { return cell.withUnsafeBytes { Array($0) } }
        let decoded: [UInt8]? = cell.withUnsafeBytes { raw in
            guard raw.count >= 2, raw[0] == 0x5C, raw[1] == 0x78, raw.count % 2 == 0 else { return nil }
            func nibble(_ byte: UInt8) -> UInt8? {
                switch byte {
                case 0x30...0x39: return byte - 0x30
                case 0x61...0x66: return byte - 0x61 + 10
                case 0x41...0x46: return byte - 0x41 + 10
                default: return nil
                }
            }
            var out = [UInt8](repeating: 0, count: (raw.count - 2) / 2)
            var position = 2
            for index in out.indices {
                guard let high = nibble(raw[position]), let low = nibble(raw[position + 1]) else { return nil }
                out[index] = high << 4 | low
                position += 2
            }
            return out
        }
        guard let decoded else { throw cell.failure([UInt8].self) }
        return decoded
    }
}

extension Date: PostgresDecodable {
    /// `timestamptz`, `timestamp` (read as UTC) or `date` in ISO style; `infinity` maps to
    /// `distantFuture`, `-infinity` to `distantPast`.
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> Date {
        guard let date = cell.withUnsafeBytes({ Timestamp.parse($0) }) else { throw cell.failure(Date.self) }
        return date
    }
}

extension UUID: PostgresDecodable {
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> UUID {
        guard let uuid = UUID(uuidString: cell.string) else { throw cell.failure(UUID.self) }
        return uuid
    }
}

extension PostgresValue: PostgresDecodable {
    /// Picks the case from the column type: integers → `.int`, `float4/8` → `.double`,
    /// `bool`, `bytea`, `timestamp[tz]`/`date` → `.timestamp`, `uuid`; everything else
    /// (including `numeric`) → `.text`.
    public static func decode(_ cell: PostgresCell) throws(StoreError) -> PostgresValue {
        switch cell.typeOID {
        case PostgresType.int2, PostgresType.int4, PostgresType.int8, PostgresType.oid: return .int(try Int64.decode(cell))
        case PostgresType.float4, PostgresType.float8: return .double(try Double.decode(cell))
        case PostgresType.bool: return .bool(try Bool.decode(cell))
        case PostgresType.bytea: return .bytes(try [UInt8].decode(cell))
        case PostgresType.timestamp, PostgresType.timestamptz, PostgresType.date: return .timestamp(try Date.decode(cell))
        case PostgresType.uuid: return .uuid(try UUID.decode(cell))
        default: return .text(cell.string)
        }
    }

    public static func decodeNull() throws(StoreError) -> PostgresValue { .null }
}
