import Foundation

/// The statements for one `batchInsert`: identifiers checked and quoted, rows split so no
/// statement exceeds PostgreSQL's 65 535 bind parameters.
struct BatchInsertPlan {
    static let maxParameters = 65_535
    /// Rows per statement are also capped so one statement's text stays modest.
    static let maxRowsPerStatement = 10_000

    let prefix: String
    let suffix: String
    let columnCount: Int
    let chunks: [Range<Int>]

    init(table: String, columns: [String], rows: [[PostgresValue]], onConflict: String?) throws(StoreError) {
        guard !columns.isEmpty else {
            throw StoreError(.invalidArgument, operation: "batchInsert", context: "no columns")
        }
        guard columns.count <= Self.maxParameters else {
            throw StoreError(.invalidArgument, operation: "batchInsert", context: "too many columns")
        }
        for (index, row) in rows.enumerated() where row.count != columns.count {
            throw StoreError(
                .invalidArgument, operation: "batchInsert",
                context: "row \(index) has \(row.count) values for \(columns.count) columns")
        }
        let quotedTable = try SQLIdentifier.quotedQualified(table)
        let quotedColumns = try columns.map { (name) throws(StoreError) in try SQLIdentifier.quoted(name) }
        prefix = "INSERT INTO \(quotedTable) (\(quotedColumns.joined(separator: ", "))) VALUES "
        if let onConflict {
            let clause = onConflict.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !clause.isEmpty, !clause.contains(";") else {
                throw StoreError(.invalidArgument, operation: "batchInsert", context: "onConflict must be one clause")
            }
            suffix = " ON CONFLICT \(clause)"
        } else {
            suffix = ""
        }
        columnCount = columns.count
        let perStatement = max(1, min(Self.maxRowsPerStatement, Self.maxParameters / columns.count))
        chunks = stride(from: 0, to: rows.count, by: perStatement).map { $0..<min($0 + perStatement, rows.count) }
    }

    /// `INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4) … [ON CONFLICT …]`.
    func statement(rowCount: Int) -> String {
        var sql = prefix
        sql.reserveCapacity(prefix.count + suffix.count + rowCount * columnCount * 8)
        var parameter = 1
        for row in 0..<rowCount {
            if row > 0 { sql += ", " }
            sql += "("
            for column in 0..<columnCount {
                if column > 0 { sql += ", " }
                sql += "$\(parameter)"
                parameter += 1
            }
            sql += ")"
        }
        return sql + suffix
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
