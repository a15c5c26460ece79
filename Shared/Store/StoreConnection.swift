import Dispatch
import Foundation
import Logging
import Synchronization

/// One PostgreSQL session, leased from a `Store` for the duration of a closure
/// (`Store.transaction`, `Store.withConnection`). Do not keep it after the closure returns.
///
/// Threading: libpq calls block, so each connection owns a serial `DispatchQueue` and runs
/// every libpq call there; the calling task suspends on a continuation meanwhile. The
/// cooperative thread pool is never blocked, and a connection is never used by two threads
/// at once (concurrent calls on one leased connection simply queue up).
///
/// ```swift
/// try await store.transaction { connection in
///     try await connection.execute("UPDATE tasks SET status = 'done' WHERE id = $1", [.uuid(id)])
///     try await connection.execute("INSERT INTO agent_events (agent, kind) VALUES ($1, $2)", [.text(agent), "task.done"])
/// }
/// ```
public final class StoreConnection: Sendable {
    let handle: PGConnectionHandle
    private let queue: DispatchQueue
    let logger: Logger
    /// When the connection was last returned to the pool (for the idle health check).
    let lastReleased: Mutex<ContinuousClock.Instant>
    /// Column types per table, read by `batchInsert`.
    private let tableColumnTypes = Mutex<[String: [String: String]]>([:])

    private init(handle: PGConnectionHandle, queue: DispatchQueue, logger: Logger) {
        self.handle = handle
        self.queue = queue
        self.logger = logger
        self.lastReleased = Mutex(.now)
    }

    /// Opens a session on a fresh serial queue.
    static func open(_ configuration: StoreConfiguration, logger: Logger) async throws(StoreError) -> StoreConnection {
        let queue = DispatchQueue(label: "mesh.store.connection")
        let result: Result<PGConnectionHandle, StoreError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(StoreError) in try PGConnectionHandle.connect(configuration, logger: logger) })
            }
        }
        return StoreConnection(handle: try result.get(), queue: queue, logger: logger)
    }

    /// Runs `body` with the handle on the connection's queue.
    func run<T: Sendable>(_ body: @escaping @Sendable (PGConnectionHandle) throws(StoreError) -> T) async throws(StoreError) -> T {
        let handle = self.handle
        let result: Result<T, StoreError> = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Result { () throws(StoreError) in try body(handle) }) }
        }
        return try result.get()
    }

    /// The server process serving this session (`pg_backend_pid()`).
    ///
    /// The corresponding C function is `PQbackendPID`.
    public var backendPID: Int32 { handle.backendPID }

    /// Runs a parameterised statement and returns its rows.
    ///
    /// The corresponding C function is `PQexecParams`.
    /// - Parameters:
    ///   - sql: one statement with `$1`, `$2`, … placeholders. Never build it from input.
    ///   - parameters: the values for the placeholders.
    /// - Returns: the rows (empty for commands that return none).
    /// - Throws: `StoreError` (`queryFailed`, `uniqueViolation`, `serializationFailure`,
    ///   `connectionLost`, `invalidArgument`).
    public func query(_ sql: String, _ parameters: [PostgresValue] = []) async throws(StoreError) -> [Row] {
        try await run { handle throws(StoreError) in try handle.execute(sql, parameters).rows() }
    }

    /// Runs a parameterised statement and returns the number of rows it affected.
    ///
    /// The corresponding C function is `PQexecParams` (the count is `PQcmdTuples`).
    /// - Returns: rows inserted, updated, deleted (or returned); 0 for other commands.
    /// - Throws: `StoreError`, as `query`.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresValue] = []) async throws(StoreError) -> Int {
        try await run { handle throws(StoreError) in try handle.execute(sql, parameters).affectedRows }
    }

    /// Inserts many rows with `INSERT … SELECT * FROM unnest(…)` statements (one array per
    /// column; see `BatchInsertPlan`) of at most 10 000 rows each, on this connection (so
    /// inside the caller's transaction, if any). The columns' types are read from the
    /// catalog once per connection and table. See `Store.batchInsert` for the arguments.
    /// - Returns: the rows inserted or updated (rows skipped by `DO NOTHING` not counted).
    @discardableResult
    public func batchInsert(
        table: String, columns: [String], rows: [[PostgresValue]], onConflict: String? = nil
    ) async throws(StoreError) -> Int {
        let plan = try BatchInsertPlan(table: table, columns: columns, rows: rows, onConflict: onConflict)
        guard !rows.isEmpty else { return 0 }
        let known = try await columnTypes(of: table)
        let types = try columns.map { (column) throws(StoreError) -> String in
            guard let type = known[column] else {
                throw StoreError(.invalidArgument, operation: "batchInsert", context: "table \(table) has no column \(column)")
            }
            // unnest would flatten an array of arrays: array columns need a plain INSERT.
            guard !type.hasSuffix("]") else {
                throw StoreError(.invalidArgument, operation: "batchInsert", context: "column \(column) is an array (\(type)), which batchInsert cannot fill")
            }
            return type
        }
        let sql = plan.statement(types: types)
        var total = 0
        do {
            for chunk in plan.chunks {
                let arrays = try plan.arrays(rows[chunk])
                total += try await run { handle throws(StoreError) in try handle.execute(sql, encoded: arrays).affectedRows }
            }
        } catch {
            // The table may have changed since its types were read.
            _ = tableColumnTypes.withLock { $0.removeValue(forKey: table) }
            throw error
        }
        return total
    }

    /// Column name → type (`format_type`) of `table`, cached for the session.
    private func columnTypes(of table: String) async throws(StoreError) -> [String: String] {
        if let known = tableColumnTypes.withLock({ $0[table] }) { return known }
        let rows = try await query(
            "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a "
                + "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            [.text(table)])
        var types: [String: String] = [:]
        for row in rows { types[try row.decode("name")] = try row.decode("type") as String }
        tableColumnTypes.withLock { $0[table] = types }
        return types
    }

    /// Runs parameterless SQL (may hold several statements) with the simple protocol.
    func executeScript(_ sql: String, operation: String = "PQexec") async throws(StoreError) -> String {
        try await run { handle throws(StoreError) in try handle.executeScript(sql, operation: operation).commandTag }
    }

    /// Probes the session with `SELECT 1`.
    func ping() async throws(StoreError) {
        _ = try await executeScript("SELECT 1")
    }

    /// Probes the session with `SELECT 1` on its queue and reports whether it answered
    /// (used by the pool's timer, which cannot await).
    func probe(_ completion: @escaping @Sendable (Bool) -> Void) {
        let handle = self.handle
        queue.async {
            let healthy = (try? handle.executeScript("SELECT 1", operation: "PQexec")) != nil && handle.isOK
            completion(healthy)
        }
    }
}
