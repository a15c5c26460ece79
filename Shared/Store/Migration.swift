import Logging

/// One versioned schema change.
///
/// ```swift
/// let migrations = [
///     Migration(version: 1, name: "create_agents", sql: "CREATE TABLE agents (id text PRIMARY KEY, spec bytea NOT NULL)"),
///     Migration(version: 2, name: "agents_node", sql: "ALTER TABLE agents ADD COLUMN node text"),
/// ]
/// try await store.migrate(migrations)
/// ```
///
/// A migration's SQL may hold several statements; it runs inside a transaction, so it
/// must not use statements that cannot (`CREATE INDEX CONCURRENTLY`, `VACUUM`) or
/// contain its own `BEGIN`/`COMMIT`. Once applied, a migration must never change: its
/// checksum is recorded and compared on every `migrate`.
public struct Migration: Sendable, Hashable {
    /// Positive, unique; migrations apply in ascending order.
    public var version: Int
    /// A short name, recorded in `schema_migrations` and shown in errors.
    public var name: String
    /// The SQL (constant text, no parameters).
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// FNV-1a 64 of the SQL's UTF-8 bytes, as 16 hex digits: detects an edited migration.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension Store {
    /// The advisory-lock key that serialises `migrate` across processes.
    public static let migrationLockKey: Int64 = 0x6D65_7368_6D69_6772  // "meshmigr"

    /// Applies the migrations not yet recorded in `schema_migrations`, in version order,
    /// each in its own transaction together with its `schema_migrations` row.
    ///
    /// The whole run holds the session advisory lock `lockKey` (`pg_advisory_lock`), so
    /// concurrent callers — other instances starting at the same time — wait and then find
    /// the work done. Calling it again is a no-op. Applied versions missing from
    /// `migrations` are left alone (an older binary may run against a newer schema).
    ///
    /// Table: `schema_migrations(version bigint primary key, name text, applied_at timestamptz, checksum text)`.
    /// - Parameters:
    ///   - migrations: the full list, in any order.
    ///   - lockKey: the advisory lock; distinct keys let separate schemas migrate in parallel.
    /// - Throws: `StoreError` with code `migrationFailed` when a migration fails (its
    ///   `sqlState` is the server's) or an applied migration's checksum differs;
    ///   `invalidArgument` for duplicate or non-positive versions; connection errors.
    public func migrate(_ migrations: [Migration], lockKey: Int64 = Store.migrationLockKey) async throws(StoreError) {
        var seen = Set<Int>()
        for migration in migrations {
            guard migration.version > 0, seen.insert(migration.version).inserted else {
                throw StoreError(.invalidArgument, operation: "migrate", context: "migration versions must be positive and unique")
            }
        }
        let ordered = migrations.sorted { $0.version < $1.version }
        let logger = self.logger
        try await pool.withConnection { (connection) throws(StoreError) in
            try await connection.execute("SELECT pg_advisory_lock($1)", [.int(lockKey)])
            do throws(StoreError) {
                try await Self.applyLocked(ordered, on: connection, logger: logger)
            } catch {
                await Self.unlock(lockKey, on: connection)
                throw error
            }
            await Self.unlock(lockKey, on: connection)
        }
    }

    private static func applyLocked(_ migrations: [Migration], on connection: StoreConnection, logger: Logger) async throws(StoreError) {
        _ = try await connection.executeScript("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                checksum text NOT NULL
            )
            """)
        var applied: [Int: String] = [:]
        for row in try await connection.query("SELECT version, checksum FROM schema_migrations") {
            applied[try row.decode("version", Int.self)] = try row.decode("checksum", String.self)
        }
        for migration in migrations {
            if let checksum = applied[migration.version], checksum != migration.checksum {
                throw StoreError(
                    .migrationFailed, operation: "migrate",
                    context: "migration \(migration.version) '\(migration.name)' was changed after it was applied (checksum mismatch)")
            }
        }
        for migration in migrations where applied[migration.version] == nil {
            do throws(StoreError) {
                try await connection.transactionTyped(isolation: .readCommitted) { (connection) throws(StoreError) in
                    _ = try await connection.executeScript(migration.sql)
                    try await connection.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        [.int(Int64(migration.version)), .text(migration.name), .text(migration.checksum)])
                }
            } catch {
                var failure = error
                if failure.code != .connectionLost && failure.code != .connectionFailed { failure.code = .migrationFailed }
                failure.context = "migration \(migration.version) '\(migration.name)' failed" + (error.context.map { ": \($0)" } ?? "")
                throw failure
            }
            logger.info("applied migration", metadata: ["mesh.store.migration.version": "\(migration.version)",
                "mesh.store.migration.name": "\(migration.name)"])
        }
    }

    /// Releases the migration lock; if that fails the session is closed by the pool (a
    /// broken connection), which releases it too.
    private static func unlock(_ key: Int64, on connection: StoreConnection) async {
        _ = try? await connection.execute("SELECT pg_advisory_unlock($1)", [.int(key)])
    }
}
