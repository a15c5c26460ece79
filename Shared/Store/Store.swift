public import Logging

/// The safe PostgreSQL API: a bounded pool of libpq connections with parameterised
/// queries, transactions, batched inserts and versioned migrations.
///
/// ```swift
/// let store = Store(configuration: StoreConfiguration(connectionString: conninfo), logger: logger)
/// defer { store.close() }
/// try await store.migrate(RegistrySchema.migrations)
/// let rows = try await store.query("SELECT id, status FROM agents WHERE node = $1", [.text(node)])
/// let id: String = try rows[0].decode("id")
/// ```
///
/// Only parameterised statements exist (values never enter the SQL text). Errors are
/// `StoreError`s whose `description` is safe to log. Connections are opened on first use;
/// see `ConnectionPool` semantics in `StoreConfiguration` and `PoolStatistics`.
public final class Store: Sendable {
    /// A leased session (`StoreConnection`), as handed to `transaction` and `withConnection`.
    public typealias Connection = StoreConnection

    /// The settings the store was created with (the connection string stays secret).
    public let configuration: StoreConfiguration
    let pool: ConnectionPool
    let logger: Logger

    /// Creates a store; no connection is opened until the first operation.
    /// - Parameters:
    ///   - configuration: connection string and pool settings.
    ///   - logger: receives pool events and server notices (debug level).
    public init(configuration: StoreConfiguration, logger: Logger) {
        precondition(configuration.poolSize > 0, "poolSize must be positive")
        self.configuration = configuration
        self.logger = logger
        self.pool = ConnectionPool(configuration: configuration, logger: logger)
        pool.startHealthChecks()
    }

    deinit { pool.close() }

    /// The pool's current state.
    public var statistics: PoolStatistics { pool.statistics }

    /// Runs a parameterised statement on a pooled connection and returns its rows.
    ///
    /// The corresponding C function is `PQexecParams`.
    /// - Parameters:
    ///   - sql: one statement with `$1`, `$2`, … placeholders; a constant, never built from input.
    ///   - parameters: the values for the placeholders.
    /// - Throws: `StoreError`: `poolTimeout`, `connectionFailed`, `connectionLost`,
    ///   `queryFailed`, `uniqueViolation`, `serializationFailure`, `invalidArgument`, `closed`.
    public func query(_ sql: String, _ parameters: [PostgresValue] = []) async throws(StoreError) -> [Row] {
        try await pool.withConnection { (connection) throws(StoreError) in try await connection.query(sql, parameters) }
    }

    /// Runs a parameterised statement and returns the number of rows it affected.
    ///
    /// The corresponding C function is `PQexecParams`.
    /// - Throws: `StoreError`, as `query`.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresValue] = []) async throws(StoreError) -> Int {
        try await pool.withConnection { (connection) throws(StoreError) in try await connection.execute(sql, parameters) }
    }

    /// Leases one connection for several statements in the same session (session settings,
    /// advisory locks). The connection goes back to the pool when `body` returns; one left
    /// inside a transaction or broken is discarded instead.
    public func withConnection<T>(_ body: (Connection) async throws -> T) async throws -> T {
        try await pool.withConnection(body)
    }

    /// Runs `body` in a transaction: `BEGIN`, then `COMMIT` when it returns, `ROLLBACK`
    /// when it throws (the error is rethrown).
    ///
    /// - Parameters:
    ///   - isolation: the isolation level; default `.readCommitted`. With
    ///     `.serializable`, be ready to retry on `serializationFailure`.
    ///   - body: the statements, run on the leased connection.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws, or a `StoreError` (including `queryFailed` when
    ///   `body` swallowed a failed statement, so the server rolled the transaction back).
    public func transaction<T: Sendable>(
        isolation: IsolationLevel = .readCommitted, _ body: (Connection) async throws -> T
    ) async throws -> T {
        try await pool.withConnection { connection in
            try await connection.transaction(isolation: isolation, body)
        }
    }

    /// Inserts many rows — the write path for write-behind recorders. Rows go in
    /// `INSERT … SELECT * FROM unnest($1::type[], …)` statements, one array per column, of
    /// at most 10 000 rows each, all in one transaction: either every row is written or none.
    ///
    /// The corresponding C function is `PQexecParams`.
    /// - Parameters:
    ///   - table: `table` or `schema.table`, a plain identifier (it is validated and quoted).
    ///   - columns: plain identifiers, validated and quoted; not array-typed columns.
    ///   - rows: one array of `columns.count` values per row.
    ///   - onConflict: the clause after `ON CONFLICT`, e.g. `"(id) DO UPDATE SET v = EXCLUDED.v"`
    ///     or `"DO NOTHING"`. It is SQL: a constant, never input.
    /// - Returns: rows inserted or updated.
    /// - Throws: `StoreError` (`invalidArgument` for bad identifiers or ragged rows).
    @discardableResult
    public func batchInsert(
        table: String, columns: [String], rows: [[PostgresValue]], onConflict: String? = nil
    ) async throws(StoreError) -> Int {
        let plan = try BatchInsertPlan(table: table, columns: columns, rows: rows, onConflict: onConflict)
        guard !rows.isEmpty else { return 0 }
        return try await pool.withConnection { (connection) throws(StoreError) in
            if plan.chunks.count == 1 {
                return try await connection.batchInsert(table: table, columns: columns, rows: rows, onConflict: onConflict)
            }
            return try await connection.transactionTyped(isolation: .readCommitted) { (connection) throws(StoreError) in
                try await connection.batchInsert(table: table, columns: columns, rows: rows, onConflict: onConflict)
            }
        }
    }

    /// Round-trips `SELECT 1` on a pooled connection (readiness probes).
    /// - Throws: `StoreError` when no connection can be had or the server does not answer.
    public func ping() async throws(StoreError) {
        try await pool.withConnection { (connection) throws(StoreError) in try await connection.ping() }
    }

    /// Closes idle connections and fails waiting callers with `closed`; connections in use
    /// close when their operation finishes. Later operations throw `closed`.
    public func close() { pool.close() }
}

/// Transaction isolation levels.
public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

extension StoreConnection {
    /// Runs `body` in a transaction on this connection (see `Store.transaction`).
    public func transaction<T>(isolation: IsolationLevel = .readCommitted, _ body: (StoreConnection) async throws -> T) async throws -> T {
        _ = try await executeScript(isolation == .readCommitted ? "BEGIN" : "BEGIN ISOLATION LEVEL \(isolation.rawValue)")
        let value: T
        do {
            value = try await body(self)
        } catch {
            await rollback()
            throw error
        }
        try await commit()
        return value
    }

    /// The same with a body that throws only `StoreError`.
    func transactionTyped<T>(
        isolation: IsolationLevel, _ body: (StoreConnection) async throws(StoreError) -> T
    ) async throws(StoreError) -> T {
        _ = try await executeScript(isolation == .readCommitted ? "BEGIN" : "BEGIN ISOLATION LEVEL \(isolation.rawValue)")
        let value: T
        do throws(StoreError) {
            value = try await body(self)
        } catch {
            await rollback()
            throw error
        }
        try await commit()
        return value
    }

    /// `COMMIT`; a transaction the server had already aborted reports `ROLLBACK` instead,
    /// which is turned into an error so the caller never believes it committed.
    private func commit() async throws(StoreError) {
        let tag = try await executeScript("COMMIT")
        if tag == "ROLLBACK" {
            throw StoreError(.queryFailed, operation: "COMMIT", sqlState: "25P02",
                context: "transaction was rolled back because a statement in it failed")
        }
    }

    /// Best-effort `ROLLBACK` (a broken connection is discarded by the pool anyway).
    private func rollback() async {
        do { _ = try await executeScript("ROLLBACK") } catch {
            logger.debug("rollback failed", metadata: ["mesh.store.error": "\(error)"])
        }
    }
}
