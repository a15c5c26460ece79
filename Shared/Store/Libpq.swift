import CPQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging

// The only file that touches libpq. Every function here blocks; callers run them on the
// owning connection's serial queue (see `StoreConnection`).

/// Owns one `PGconn *`, finished in `deinit`.
///
/// `@unchecked Sendable`: libpq allows one thread at a time per connection; every call is
/// made either on the owning `StoreConnection`'s serial dispatch queue or by the pool
/// while no one else holds the connection (the pool's lock orders those hand-offs).
final class PGConnectionHandle: @unchecked Sendable {
    private let connection: OpaquePointer
    private let noticeContext: Unmanaged<NoticeContext>

    /// Opens a connection with `connectionString` expanded first, so its settings apply,
    /// then `client_encoding`, `connect_timeout` and `application_name` from the
    /// configuration on top. Installs a notice processor that logs notices at debug level.
    ///
    /// The corresponding C function is `PQconnectdbParams`.
    /// - Throws: `invalidArgument` for an unparsable connection string, `connectionFailed`
    ///   when the server cannot be reached or refuses the session.
    static func connect(_ configuration: StoreConfiguration, logger: Logger) throws(StoreError) -> PGConnectionHandle {
        try checkConnectionString(configuration.connectionString)
        var settings: [(String, String)] = [
            ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3"),
            ("dbname", configuration.connectionString),
            ("client_encoding", "UTF8"),
            ("connect_timeout", String(max(2, configuration.connectTimeout.components.seconds))),
        ]
        if let name = configuration.applicationName { settings.append(("application_name", name)) }
        let keys = settings.map { strdup($0.0) }
        let values = settings.map { strdup($0.1) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let keyPointers = keys.map { UnsafePointer($0) } + [nil]
        let valuePointers = values.map { UnsafePointer($0) } + [nil]
        guard let connection = PQconnectdbParams(keyPointers, valuePointers, 1) else {
            throw StoreError(.connectionFailed, operation: "PQconnectdbParams", context: "out of memory")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.errorMessage(connection)
            PQfinish(connection)
            throw StoreError(.connectionFailed, operation: "PQconnectdbParams", serverMessage: message)
        }
        let handle = PGConnectionHandle(connection, logger: logger)
        // ISO dates whatever the server's default; exact floats on servers before 12.
        try handle.executeScript("SET DateStyle TO ISO; SET extra_float_digits TO 3", operation: "PQexec")
        return handle
    }

    /// Rejects a connection string libpq cannot parse, without repeating any of it (a
    /// parse error message could quote a password).
    ///
    /// The corresponding C function is `PQconninfoParse`.
    private static func checkConnectionString(_ string: String) throws(StoreError) {
        let looksStructured = string.contains("=") || string.hasPrefix("postgres://") || string.hasPrefix("postgresql://")
        guard looksStructured else { return }  // a bare database name
        var message: UnsafeMutablePointer<CChar>? = nil
        guard let options = PQconninfoParse(string, &message) else {
            if let message { PQfreemem(message) }
            throw StoreError(.invalidArgument, operation: "PQconninfoParse", context: "connection string cannot be parsed")
        }
        PQconninfoFree(options)
    }

    private init(_ connection: OpaquePointer, logger: Logger) {
        self.connection = connection
        self.noticeContext = Unmanaged.passRetained(NoticeContext(logger: logger))
        PQsetNoticeProcessor(connection, { context, message in
            guard let context, let message else { return }
            let box = Unmanaged<NoticeContext>.fromOpaque(context).takeUnretainedValue()
            var text = String(cString: message)
            while text.last?.isNewline == true { text.removeLast() }
            box.logger.debug("postgres notice", metadata: ["mesh.store.notice": "\(text)"])
        }, noticeContext.toOpaque())
    }

    deinit {
        PQfinish(connection)
        noticeContext.release()
    }

    /// Whether the connection is usable and outside any transaction. Reads whatever the
    /// server sent meanwhile without blocking (libpq sockets are non-blocking), so a
    /// session the server terminated is noticed here.
    ///
    /// The corresponding C functions are `PQsocket`, `PQconsumeInput`, `PQstatus` and
    /// `PQtransactionStatus` (with `poll(2)`).
    func checkIdle() -> Bool {
        // A terminated session first delivers its FATAL message, then end-of-file; each
        // `PQconsumeInput` sees one of them, so read while the socket stays readable.
        for _ in 0..<4 {
            guard PQstatus(connection) == CONNECTION_OK else { return false }
            var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { break }
            guard PQconsumeInput(connection) == 1 else { return false }
        }
        return PQstatus(connection) == CONNECTION_OK && PQtransactionStatus(connection) == PQTRANS_IDLE
    }

    /// Whether libpq still considers the connection open.
    ///
    /// The corresponding C function is `PQstatus`.
    var isOK: Bool { PQstatus(connection) == CONNECTION_OK }

    /// Whether a transaction block is open (idle in it, or failed in it).
    ///
    /// The corresponding C function is `PQtransactionStatus`.
    var transactionState: TransactionState {
        switch PQtransactionStatus(connection) {
        case PQTRANS_IDLE: return .idle
        case PQTRANS_INTRANS: return .inTransaction
        case PQTRANS_INERROR: return .failed
        default: return .unknown
        }
    }

    enum TransactionState { case idle, inTransaction, failed, unknown }

    /// The backend's process id (for `pg_terminate_backend` in tests and logs).
    ///
    /// The corresponding C function is `PQbackendPID`.
    var backendPID: Int32 { PQbackendPID(connection) }

    /// Runs one parameterised statement; text parameters in text format, `bytea` in
    /// binary; results in text format.
    ///
    /// The corresponding C function is `PQexecParams`.
    func execute(_ sql: String, _ parameters: [PostgresValue]) throws(StoreError) -> QueryResult {
        var encoded: [EncodedParameter] = []
        encoded.reserveCapacity(parameters.count)
        for (index, parameter) in parameters.enumerated() { encoded.append(try parameter.encoded(index: index)) }
        return try execute(sql, encoded: encoded)
    }

    /// The same with parameters already encoded for the wire.
    ///
    /// The corresponding C function is `PQexecParams`.
    func execute(_ sql: String, encoded: [EncodedParameter]) throws(StoreError) -> QueryResult {
        guard encoded.count <= 65_535 else {
            throw StoreError(.invalidArgument, operation: "PQexecParams", context: "more than 65535 parameters")
        }
        // One contiguous buffer for all parameter bytes; pointers are taken into it.
        var offsets: [Int] = []
        offsets.reserveCapacity(encoded.count)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(encoded.reduce(0) { $0 + ($1.bytes?.count ?? 0) })
        for parameter in encoded {
            if let bytes = parameter.bytes {
                offsets.append(buffer.count)
                buffer.append(contentsOf: bytes)
            } else {
                offsets.append(-1)
            }
        }
        buffer.append(0)  // never empty, so every offset has a valid base address
        let types = encoded.map { Oid($0.type) }
        let lengths = encoded.map { Int32(clamping: $0.bytes?.count ?? 0) }
        let formats = encoded.map { Int32($0.isBinary ? 1 : 0) }
        let result: OpaquePointer? = buffer.withUnsafeBufferPointer { raw in
            let base = UnsafeRawPointer(raw.baseAddress)
            let values: [UnsafePointer<CChar>?] = offsets.map { offset in
                guard offset >= 0, let base else { return nil }
                return (base + offset).assumingMemoryBound(to: CChar.self)
            }
            return PQexecParams(connection, sql, Int32(encoded.count), types, values, lengths, formats, 0)
        }
        return try check(result, operation: "PQexecParams")
    }

    /// Runs SQL without parameters using the simple query protocol, which allows several
    /// statements in one string (migrations, `BEGIN`/`COMMIT`).
    ///
    /// The corresponding C function is `PQexec`.
    @discardableResult
    func executeScript(_ sql: String, operation: String) throws(StoreError) -> QueryResult {
        try check(PQexec(connection, sql), operation: operation)
    }

    /// Turns a `PGresult *` into a `QueryResult` or a `StoreError`.
    private func check(_ result: OpaquePointer?, operation: String) throws(StoreError) -> QueryResult {
        guard let result else {
            let lost = PQstatus(connection) != CONNECTION_OK
            throw StoreError(lost ? .connectionLost : .queryFailed, operation: operation, serverMessage: Self.errorMessage(connection))
        }
        let owned = QueryResult(result)
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return owned
        default:
            throw owned.error(operation: operation, connectionLost: PQstatus(connection) != CONNECTION_OK)
        }
    }

    private static func errorMessage(_ connection: OpaquePointer) -> String? {
        guard let message = PQerrorMessage(connection) else { return nil }
        let text = String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}

/// The logger the notice processor writes to; retained for the connection's lifetime.
private final class NoticeContext: Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

/// Owns one `PGresult *`, cleared in `deinit`.
///
/// `@unchecked Sendable` is not claimed: a result is created, read and freed on one queue.
final class QueryResult {
    private let result: OpaquePointer

    init(_ result: OpaquePointer) { self.result = result }

    deinit { PQclear(result) }

    /// The number of rows the command affected (`INSERT`, `UPDATE`, `DELETE`, …), 0 when
    /// the command reports none.
    ///
    /// The corresponding C function is `PQcmdTuples`.
    var affectedRows: Int {
        guard let text = PQcmdTuples(result) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    /// The command tag (`INSERT 0 1`, `COMMIT`, `ROLLBACK`).
    ///
    /// The corresponding C function is `PQcmdStatus`.
    var commandTag: String {
        guard let text = PQcmdStatus(result) else { return "" }
        return String(cString: text)
    }

    /// Copies every row out of the result into one buffer.
    ///
    /// The corresponding C functions are `PQntuples`, `PQnfields`, `PQfname`, `PQftype`,
    /// `PQgetisnull`, `PQgetlength` and `PQgetvalue`.
    func rows() -> [Row] {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        guard rowCount > 0, columnCount > 0 else { return [] }
        var names: [String] = []
        var types: [UInt32] = []
        for column in 0..<Int32(columnCount) {
            names.append(PQfname(result, column).map { String(cString: $0) } ?? "?column?")
            types.append(UInt32(PQftype(result, column)))
        }
        var total = 0
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) { total += Int(PQgetlength(result, row, column)) }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        var offsets: [Int] = []
        var lengths: [Int32] = []
        offsets.reserveCapacity(rowCount * columnCount)
        lengths.reserveCapacity(rowCount * columnCount)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                offsets.append(bytes.count)
                if PQgetisnull(result, row, column) == 1 {
                    lengths.append(-1)
                    continue
                }
                let length = PQgetlength(result, row, column)
                lengths.append(length)
                if length > 0, let value = PQgetvalue(result, row, column) {
                    bytes.append(contentsOf: UnsafeRawBufferPointer(start: value, count: Int(length)))
                }
            }
        }
        let storage = ResultStorage(
            columnNames: names, columnTypes: types, rowCount: rowCount, offsets: offsets, lengths: lengths, bytes: bytes)
        return (0..<rowCount).map { Row(storage: storage, index: $0) }
    }

    /// The error this failed result describes. Only the SQLSTATE, the constraint name and
    /// the primary message are kept — not the detail, which quotes values.
    ///
    /// The corresponding C function is `PQresultErrorField`.
    func error(operation: String, connectionLost: Bool) -> StoreError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field("C")
        let code: StoreError.Code
        switch sqlState {
        case _ where connectionLost: code = .connectionLost
        case "23505": code = .uniqueViolation
        case "40001", "40P01": code = .serializationFailure
        case let state? where state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03":
            code = .connectionLost
        default: code = .queryFailed
        }
        let message = field("M") ?? PQresultErrorMessage(result).map { String(cString: $0) }
        return StoreError(code, operation: operation, sqlState: sqlState, constraint: field("n"), serverMessage: message)
    }
}
