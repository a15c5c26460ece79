/// An error from the store: what went wrong (`code`), the SQLSTATE the server reported,
/// and the operation (usually the libpq function) that failed.
///
/// `description` is safe to log: it never contains SQL text, bound values, connection
/// strings or passwords — only the code, the SQLSTATE, the operation and library-written
/// context (a migration's version and name, a constraint or column name).
/// `debugDescription` adds the server's primary message, which PostgreSQL sometimes
/// writes with a fragment of input in it (for example `invalid input syntax for type
/// integer`), so log it only at debug level.
///
/// ```swift
/// do {
///     try await store.execute("INSERT INTO agents (id) VALUES ($1)", [.text(id)])
/// } catch let error where error.code == .uniqueViolation {
///     // already registered
/// }
/// ```
public struct StoreError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case connectionFailed, connectionLost, poolTimeout, queryFailed, uniqueViolation
            case serializationFailure, decoding, migrationFailed, closed, invalidArgument, cancelled
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A new connection could not be opened (server down, refused, authentication).
        public static let connectionFailed = Code(.connectionFailed)
        /// An open connection broke during an operation (server stopped or restarted,
        /// network failure). Whether the statement took effect is unknown.
        public static let connectionLost = Code(.connectionLost)
        /// No connection became free within `StoreConfiguration.acquireTimeout`.
        public static let poolTimeout = Code(.poolTimeout)
        /// The same as `poolTimeout`: the pool was exhausted for the whole wait.
        public static let poolExhausted = Code(.poolTimeout)
        /// The server rejected the statement (see `sqlState`).
        public static let queryFailed = Code(.queryFailed)
        /// A unique or primary-key constraint was violated (SQLSTATE `23505`).
        public static let uniqueViolation = Code(.uniqueViolation)
        /// The transaction conflicted with another and may be retried: SQLSTATE `40001`
        /// (serialization_failure) or `40P01` (deadlock_detected).
        public static let serializationFailure = Code(.serializationFailure)
        /// A column's value could not be decoded as the requested Swift type.
        public static let decoding = Code(.decoding)
        /// A migration failed or an applied migration's checksum changed.
        public static let migrationFailed = Code(.migrationFailed)
        /// The store was closed.
        public static let closed = Code(.closed)
        /// The caller passed something unusable (bad identifier, wrong row width, a NUL
        /// character in text, a malformed connection string).
        public static let invalidArgument = Code(.invalidArgument)
        /// The task was cancelled while waiting for a connection.
        public static let cancelled = Code(.cancelled)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// The five-character SQLSTATE from the server, when there was one.
    public var sqlState: String?
    /// The operation that failed, usually the libpq function (`PQexecParams`).
    public var operation: String
    /// Library-written context that is safe to log (never SQL or values).
    public var context: String?
    /// The constraint named by the server, if any (e.g. the violated unique index).
    public var constraint: String?
    /// The server's (or libpq's) primary message. It may quote input, so it is shown in
    /// `debugDescription` only.
    public var serverMessage: String?
    /// Where the error was raised.
    public var file: String
    public var line: Int

    public init(
        _ code: Code, operation: String, sqlState: String? = nil, context: String? = nil, constraint: String? = nil,
        serverMessage: String? = nil, file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.operation = operation
        self.sqlState = sqlState
        self.context = context
        self.constraint = constraint
        self.serverMessage = serverMessage
        self.file = file
        self.line = line
    }

    /// Whether retrying the whole transaction may succeed (serialization failure,
    /// deadlock, a lost connection, an exhausted pool).
    public var isTransient: Bool {
        code == .serializationFailure || code == .connectionLost || code == .connectionFailed || code == .poolTimeout
    }

    public var description: String {
        var text = "StoreError.\(code) in \(operation)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let constraint { text += " constraint \"\(constraint)\"" }
        if let context { text += ": \(context)" }
        return text
    }

    public var debugDescription: String {
        var text = description
        if let serverMessage { text += " — server: \(serverMessage)" }
        return text + " [\(file):\(line)]"
    }
}
