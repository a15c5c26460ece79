import Foundation

/// The statements for one `batchInsert`: identifiers checked and quoted, one `unnest` of
/// one array per column, rows split into statements of at most ``maxRowsPerStatement``.
struct BatchInsertPlan {
    /// Rows per statement, so one statement's arrays stay modest.
    static let maxRowsPerStatement = 10_000

    let table: String
    let columns: [String]
    let prefix: String
    let suffix: String
    let chunks: [Range<Int>]

    init(table: String, columns: [String], rows: [[PostgresValue]], onConflict: String?) throws(StoreError) {
        guard !columns.isEmpty else {
            throw StoreError(.invalidArgument, operation: "batchInsert", context: "no columns")
        }
        guard columns.count <= 1_600 else {  // PostgreSQL's limit of columns per table
            throw StoreError(.invalidArgument, operation: "batchInsert", context: "too many columns")
        }
        for (index, row) in rows.enumerated() where row.count != columns.count {
            throw StoreError(
                .invalidArgument, operation: "batchInsert",
                context: "row \(index) has \(row.count) values for \(columns.count) columns")
        }
        self.table = table
        self.columns = columns
        let quotedTable = try SQLIdentifier.quotedQualified(table)
        let quotedColumns = try columns.map { (name) throws(StoreError) in try SQLIdentifier.quoted(name) }
        prefix = "INSERT INTO \(quotedTable) (\(quotedColumns.joined(separator: ", "))) SELECT * FROM unnest("
        if let onConflict {
            guard onConflict.contains(where: { !$0.isWhitespace }), !onConflict.contains(";") else {
                throw StoreError(.invalidArgument, operation: "batchInsert", context: "onConflict must be one clause")
            }
            suffix = ") ON CONFLICT \(onConflict)"
        } else {
            suffix = ")"
        }
        chunks = stride(from: 0, to: rows.count, by: Self.maxRowsPerStatement).map { $0..<min($0 + Self.maxRowsPerStatement, rows.count) }
    }

    /// `INSERT INTO "t" ("a", "b") SELECT * FROM unnest($1::integer[], $2::text[]) [ON CONFLICT …]`:
    /// one array parameter per column, whatever the number of rows — a short statement the
    /// server parses and plans at once, where a `VALUES` list of 500 rows of 17 columns has
    /// 8 500 parameters to parse, type and plan (about a quarter of the server's time spent
    /// on such batches). `types` are the columns' types as `format_type` spells them.
    func statement(types: [String]) -> String {
        prefix + types.enumerated().map { "$\($0.offset + 1)::\($0.element)[]" }.joined(separator: ", ") + suffix
    }

    /// The parameters of ``statement(types:)`` for `rows`: one array literal per column (text
    /// form: every element double-quoted with `\\` and `\"` escaped, NULL bare), encoded for
    /// the wire in one pass (the history writer sends tens of thousands of elements a second).
    /// - Throws: `invalidArgument` for a value that cannot be sent (text with U+0000, a date
    ///   outside 1…9999).
    func arrays(_ rows: ArraySlice<[PostgresValue]>) throws(StoreError) -> [EncodedParameter] {
        var literals = [[UInt8]](repeating: [], count: columns.count)
        for column in literals.indices {
            literals[column].reserveCapacity(2 + rows.count * 24)
            literals[column].append(123)  // "{"
        }
        for (rowNumber, row) in rows.enumerated() {
            for (column, value) in row.enumerated() {
                if rowNumber > 0 { literals[column].append(44) }  // ","
                try Self.appendElement(value, column: column, to: &literals[column])
            }
        }
        return literals.map { literal in
            var bytes = literal
            bytes.append(125)  // "}"
            bytes.append(0)
            return EncodedParameter(type: PostgresType.unspecified, isBinary: false, bytes: bytes)
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private static func appendElement(_ value: PostgresValue, column: Int, to literal: inout [UInt8]) throws(StoreError) {
        switch value {
        case .null:
            literal += "NULL".utf8
        case .text(let text):
            var text = text
            let clean = text.withUTF8 { buffer in
                literal.append(34)
                for byte in buffer {
                    if byte == 0 { return false }
                    if byte == 34 || byte == 92 { literal.append(92) }
                    literal.append(byte)
                }
                literal.append(34)
                return true
            }
            guard clean else { throw StoreError(.invalidArgument, operation: "bind", context: "column \(column + 1): text contains U+0000") }
        case .int(let number):
            if number < 0 { literal.append(45) }
            var magnitude = number.magnitude
            var divisor: UInt64 = 1
            while magnitude / divisor >= 10 { divisor *= 10 }
            while divisor > 0 {
                literal.append(0x30 + UInt8(magnitude / divisor))
                magnitude %= divisor
                divisor /= 10
            }
        case .bytes(let bytes):
            literal += #""\\x"#.utf8  // "\\x: an escaped backslash, then x
            for byte in bytes {
                literal.append(hex[Int(byte >> 4)])
                literal.append(hex[Int(byte & 0x0f)])
            }
            literal.append(34)
        case .timestamp(let date):
            literal.append(34)
            guard Timestamp.append(date, to: &literal) else {
                throw StoreError(.invalidArgument, operation: "bind", context: "column \(column + 1): date outside years 1…9999")
            }
            literal.append(34)
        default:
            let text = try value.textForm(index: column)!
            try appendElement(.text(text), column: column, to: &literal)
        }
    }
}

/// SQL identifiers (table and column names) that the store writes into statements.
public enum SQLIdentifier {
    /// Checks `name` is a plain identifier — a letter or `_`, then letters, digits, `_`,
    /// at most 63 bytes — and returns it double-quoted. Quoting keeps the case as written,
    /// so use the lowercase names an unquoted `CREATE TABLE` produces.
    /// - Throws: `invalidArgument` for anything else.
    public static func quoted(_ name: String) throws(StoreError) -> String {
        guard isValid(name) else {
            throw StoreError(.invalidArgument, operation: "identifier", context: "not a plain SQL identifier")
        }
        return "\"\(name)\""
    }

    /// The same for `table` or `schema.table`.
    public static func quotedQualified(_ name: String) throws(StoreError) -> String {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else {
            throw StoreError(.invalidArgument, operation: "identifier", context: "not a plain SQL identifier")
        }
        return try parts.map { (part) throws(StoreError) in try quoted(String(part)) }.joined(separator: ".")
    }

    /// Whether `name` matches `[A-Za-z_][A-Za-z0-9_]{0,62}`.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 63 else { return false }
        func letter(_ byte: UInt8) -> Bool { (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F }
        return letter(first) && bytes.dropFirst().allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}
