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
            let clause = onConflict.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !clause.isEmpty, !clause.contains(";") else {
                throw StoreError(.invalidArgument, operation: "batchInsert", context: "onConflict must be one clause")
            }
            suffix = ") ON CONFLICT \(clause)"
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
    /// form: every element double-quoted with `\\` and `\"` escaped, NULL bare).
    /// - Throws: `invalidArgument` for a value that cannot be sent (text with U+0000, a date
    ///   outside 1…9999).
    func arrays(_ rows: ArraySlice<[PostgresValue]>) throws(StoreError) -> [PostgresValue] {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var literals = [[UInt8]](repeating: [123], count: columns.count)  // "{"
        func quoted(_ text: some Sequence<UInt8>, into literal: inout [UInt8]) {
            literal.append(34)
            for byte in text {
                if byte == 34 || byte == 92 { literal.append(92) }
                literal.append(byte)
            }
            literal.append(34)
        }
        for (rowNumber, row) in rows.enumerated() {
            for (column, value) in row.enumerated() {
                if rowNumber > 0 { literals[column].append(44) }  // ","
                switch value {
                case .null:
                    literals[column] += "NULL".utf8
                case .text(let text):
                    try PostgresValue.checkText(text, at: "column \(column + 1)")
                    quoted(text.utf8, into: &literals[column])
                case .int(let number):
                    literals[column] += String(number).utf8
                case .bytes(let bytes):
                    literals[column] += #""\\x"#.utf8  // "\\x: an escaped backslash, then x
                    for byte in bytes {
                        literals[column].append(hex[Int(byte >> 4)])
                        literals[column].append(hex[Int(byte & 0x0f)])
                    }
                    literals[column].append(34)
                default:
                    quoted(try value.textForm(index: column)!.utf8, into: &literals[column])
                }
            }
        }
        return literals.map { .text(String(decoding: $0 + [125], as: UTF8.self)) }
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
