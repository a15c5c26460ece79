public import Foundation

/// A value bound to a statement parameter (`$1`, `$2`, …) or read from a column.
///
/// Values travel separately from the SQL text (`PQexecParams`), so quotes, backslashes or
/// SQL-looking strings in them are just data. `text` is sent with an unspecified type so
/// the server reads it like a string literal (it fits `text`, `varchar`, `jsonb`, enums…);
/// the other cases are sent with their PostgreSQL type: `bool`, `int8`, `float8`, `bytea`
/// (in binary format), `timestamptz`, `uuid`.
///
/// ```swift
/// try await store.execute(
///     "INSERT INTO agents (id, kind, spec, created) VALUES ($1, $2, $3, $4)",
///     [.text(id), "echo", .bytes(spec), .timestamp(Date())])
/// ```
public enum PostgresValue: Sendable, Hashable {
    /// SQL NULL.
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    /// Text; must not contain U+0000, which PostgreSQL text cannot hold.
    case text(String)
    /// Binary data (`bytea`).
    case bytes([UInt8])
    /// A point in time, microsecond precision, years 1…9999 (`timestamptz`).
    case timestamp(Date)
    case uuid(UUID)

    /// Wraps any supported Swift value (`nil` becomes `.null`).
    public init(_ value: some PostgresEncodable) { self = value.postgresValue }
}

extension PostgresValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .text(value) }
}

/// A Swift type that can be bound as a statement parameter.
public protocol PostgresEncodable: Sendable {
    /// The value as a parameter.
    var postgresValue: PostgresValue { get }
}

extension PostgresValue: PostgresEncodable { public var postgresValue: PostgresValue { self } }
extension String: PostgresEncodable { public var postgresValue: PostgresValue { .text(self) } }
extension Substring: PostgresEncodable { public var postgresValue: PostgresValue { .text(String(self)) } }
extension Bool: PostgresEncodable { public var postgresValue: PostgresValue { .bool(self) } }
extension Int: PostgresEncodable { public var postgresValue: PostgresValue { .int(Int64(self)) } }
extension Int64: PostgresEncodable { public var postgresValue: PostgresValue { .int(self) } }
extension Int32: PostgresEncodable { public var postgresValue: PostgresValue { .int(Int64(self)) } }
extension Int16: PostgresEncodable { public var postgresValue: PostgresValue { .int(Int64(self)) } }
extension UInt32: PostgresEncodable { public var postgresValue: PostgresValue { .int(Int64(self)) } }
extension Double: PostgresEncodable { public var postgresValue: PostgresValue { .double(self) } }
extension Float: PostgresEncodable { public var postgresValue: PostgresValue { .double(Double(self)) } }
extension Date: PostgresEncodable { public var postgresValue: PostgresValue { .timestamp(self) } }
extension UUID: PostgresEncodable { public var postgresValue: PostgresValue { .uuid(self) } }
extension Array: PostgresEncodable where Element == UInt8 { public var postgresValue: PostgresValue { .bytes(self) } }
extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresValue: PostgresValue { self?.postgresValue ?? .null }
}

// MARK: - Wire encoding

/// Type OIDs from `pg_type` used for parameters and column decoding.
enum PostgresType {
    static let unspecified: UInt32 = 0
    static let bool: UInt32 = 16
    static let bytea: UInt32 = 17
    static let int8: UInt32 = 20
    static let int2: UInt32 = 21
    static let int4: UInt32 = 23
    static let text: UInt32 = 25
    static let oid: UInt32 = 26
    static let float4: UInt32 = 700
    static let float8: UInt32 = 701
    static let varchar: UInt32 = 1043
    static let date: UInt32 = 1082
    static let timestamp: UInt32 = 1114
    static let timestamptz: UInt32 = 1184
    static let numeric: UInt32 = 1700
    static let uuid: UInt32 = 2950
}

/// One parameter ready for `PQexecParams`: its type, format and bytes (text values are
/// NUL-terminated, as libpq reads them with `strlen`).
struct EncodedParameter {
    var type: UInt32
    var isBinary: Bool
    var bytes: [UInt8]?
}

extension PostgresValue {
    /// Encodes the value for the wire.
    /// - Throws: `invalidArgument` for text containing U+0000 or a date outside 1…9999.
    /// The value in PostgreSQL's text form (nil for NULL), as sent in a parameter; not for
    /// `.bytes`, which go in binary.
    /// - Throws: `invalidArgument` for text containing U+0000 or a date outside 1…9999.
    func textForm(index: Int) throws(StoreError) -> String? {
        guard let bytes = try encoded(index: index).bytes else { return nil }
        return String(decoding: bytes.dropLast(), as: UTF8.self)  // without the NUL
    }

    /// PostgreSQL text cannot hold U+0000.
    /// - Throws: `invalidArgument` naming `place` when `text` contains it.
    static func checkText(_ text: String, at place: @autoclosure () -> String) throws(StoreError) {
        if text.utf8.contains(0) { throw StoreError(.invalidArgument, operation: "bind", context: "\(place()): text contains U+0000") }
    }

    func encoded(index: Int) throws(StoreError) -> EncodedParameter {
        func text(_ string: String) -> [UInt8] { Array(string.utf8) + [0] }
        switch self {
        case .null: return EncodedParameter(type: PostgresType.unspecified, isBinary: false, bytes: nil)
        case .bool(let value): return EncodedParameter(type: PostgresType.bool, isBinary: false, bytes: text(value ? "t" : "f"))
        case .int(let value): return EncodedParameter(type: PostgresType.int8, isBinary: false, bytes: text(String(value)))
        case .double(let value):
            let string: String
            if value.isNaN { string = "NaN" }
            else if value.isInfinite { string = value < 0 ? "-Infinity" : "Infinity" }
            else { string = "\(value)" }
            return EncodedParameter(type: PostgresType.float8, isBinary: false, bytes: text(string))
        case .text(let value):
            try Self.checkText(value, at: "parameter $\(index + 1)")
            return EncodedParameter(type: PostgresType.unspecified, isBinary: false, bytes: text(value))
        case .bytes(let value): return EncodedParameter(type: PostgresType.bytea, isBinary: true, bytes: value)
        case .timestamp(let date):
            guard let string = Timestamp.format(date) else {
                throw StoreError(.invalidArgument, operation: "bind", context: "parameter $\(index + 1): date outside years 1…9999")
            }
            return EncodedParameter(type: PostgresType.timestamptz, isBinary: false, bytes: text(string))
        case .uuid(let value): return EncodedParameter(type: PostgresType.uuid, isBinary: false, bytes: text(value.uuidString))
        }
    }
}
