import CNats
import Foundation

/// An error from the NATS client: a stable ``Code`` to branch on, the C function (or
/// wrapper step) that failed, and the raw cnats status for debugging.
///
/// `description` is safe to log: it never contains payloads, header values or
/// credentials, only `"<code>: <operation>: <short text>"`.
///
/// ```swift
/// do { _ = try await connection.request("svc.echo", payload: [], timeout: .seconds(1)) }
/// catch where error.code == .noResponders { /* nobody is listening */ }
/// ```
///
/// Two errors compare equal when their codes are equal.
public struct NatsError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible, Equatable {
    /// The kind of failure, stable across releases.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name, e.g. `"timeout"`.
        public let rawValue: String
        /// Makes a code from its name.
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The operation did not complete in time (`NATS_TIMEOUT`).
        public static let timeout = Code("timeout")
        /// A request found no subscriber on its subject (`NATS_NO_RESPONDERS`, status 503).
        public static let noResponders = Code("noResponders")
        /// The connection is closed (`NATS_CONNECTION_CLOSED`).
        public static let connectionClosed = Code("connectionClosed")
        /// No server could be reached, or the connection is currently down.
        public static let notConnected = Code("notConnected")
        /// The stream, consumer, bucket, key or message does not exist.
        public static let notFound = Code("notFound")
        /// A KV `create` found the key already present.
        public static let keyExists = Code("keyExists")
        /// A compare-and-set (KV update, expected last sequence) lost the race.
        public static let wrongLastRevision = Code("wrongLastRevision")
        /// Messages were dropped because a consumer did not keep up.
        public static let slowConsumer = Code("slowConsumer")
        /// An argument was rejected before or by the C library.
        public static let invalidArgument = Code("invalidArgument")
        /// A subject (or queue name) is not valid.
        public static let invalidSubject = Code("invalidSubject")
        /// The payload exceeds the server's `max_payload`.
        public static let maxPayload = Code("maxPayload")
        /// The JetStream API returned an error (see ``NatsError/jetStreamCode``).
        public static let jetStream = Code("jetStream")
        /// A network failure.
        public static let io = Code("io")
        /// Authentication failed or the action is not permitted.
        public static let notPermitted = Code("notPermitted")
        /// The connection or subscription is draining.
        public static let draining = Code("draining")
        /// The waiting task was cancelled.
        public static let cancelled = Code("cancelled")
        /// Anything else.
        public static let other = Code("other")
    }

    /// The kind of failure.
    public let code: Code
    /// The C function or wrapper step that failed, e.g. `"natsConnection_Request"`.
    public let operation: String
    /// The raw `natsStatus` value, when a C call produced this error.
    public let status: Int32?
    /// The JetStream API error code (`jsErrCode`, e.g. 10071), when there was one.
    public let jetStreamCode: Int?
    /// A short human-readable explanation (never payloads or secrets).
    public let detail: String

    /// Makes an error.
    public init(code: Code, operation: String, detail: String = "", status: Int32? = nil, jetStreamCode: Int? = nil) {
        self.code = code
        self.operation = operation
        self.detail = detail
        self.status = status
        self.jetStreamCode = jetStreamCode
    }

    public var description: String {
        detail.isEmpty ? "\(code): \(operation)" : "\(code): \(operation): \(detail)"
    }

    public var debugDescription: String {
        var text = "NatsError(\(description)"
        if let status { text += ", status: \(status)" }
        if let jetStreamCode { text += ", jsErrCode: \(jetStreamCode)" }
        return text + ")"
    }

    public static func == (lhs: NatsError, rhs: NatsError) -> Bool { lhs.code == rhs.code }
}

extension NatsError {
    /// Builds an error from a cnats status, reading the thread's last error text
    /// (`nats_GetLastError`) and mapping JetStream codes.
    init(status: natsStatus, operation: StaticString, jsError: jsErrCode = jsErrCode(rawValue: 0)) {
        self.init(status: status, operation: "\(operation)", jsError: jsError)
    }

    init(status: natsStatus, operation: String, jsError: jsErrCode = jsErrCode(rawValue: 0)) {
        var lastStatus = NATS_OK
        var text = ""
        if let last = nats_GetLastError(&lastStatus), lastStatus == status {
            text = String(cString: last)
        }
        // cnats prefixes "(file.c:123): "; keep only the message.
        if text.hasPrefix("("), let end = text.range(of: "): ") { text = String(text[end.upperBound...]) }
        if text.isEmpty, let generic = natsStatus_GetText(status) { text = String(cString: generic) }
        if text.utf8.count > 160 { text = String(text.prefix(160)) + "…" }
        let js = Int(jsError.rawValue)
        self.init(
            code: Self.code(for: status, jsError: js, text: text), operation: operation, detail: text,
            status: Int32(status.rawValue), jetStreamCode: js == 0 ? nil : js)
    }

    static func code(for status: natsStatus, jsError: Int, text: String) -> Code {
        switch jsError {
        case 10071: return .wrongLastRevision  // JSStreamWrongLastSequenceErr
        case 10014, 10059, 10037, 10043: return .notFound  // consumer, stream, message, sequence
        case 0: break
        default: return .jetStream
        }
        switch status {
        case NATS_TIMEOUT: return .timeout
        case NATS_NO_RESPONDERS: return .noResponders
        case NATS_CONNECTION_CLOSED: return .connectionClosed
        case NATS_NO_SERVER, NATS_NOT_YET_CONNECTED, NATS_CONNECTION_DISCONNECTED: return .notConnected
        case NATS_NOT_FOUND: return .notFound
        case NATS_SLOW_CONSUMER: return .slowConsumer
        case NATS_INVALID_ARG, NATS_INVALID_TIMEOUT, NATS_INVALID_SUBSCRIPTION, NATS_ILLEGAL_STATE: return .invalidArgument
        case NATS_INVALID_SUBJECT, NATS_INVALID_QUEUE_NAME: return .invalidSubject
        case NATS_MAX_PAYLOAD: return .maxPayload
        case NATS_IO_ERROR, NATS_STALE_CONNECTION, NATS_PROTOCOL_ERROR, NATS_SSL_ERROR: return .io
        case NATS_NOT_PERMITTED, NATS_CONNECTION_AUTH_FAILED: return .notPermitted
        case NATS_DRAINING: return .draining
        case NATS_ERR:
            // Server-side JetStream errors surfaced without a jsErrCode (e.g. through
            // kvStore_Update, which passes no errCode to js_Publish) keep their text.
            if text.contains("wrong last sequence") { return .wrongLastRevision }
            if text.contains("not found") { return .notFound }
            return .other
        default: return .other
        }
    }

    static func invalidSubject(_ operation: StaticString, _ what: String) -> NatsError {
        NatsError(code: .invalidSubject, operation: "\(operation)", detail: what)
    }
}

/// The one status gate: runs a cnats call and throws a ``NatsError`` unless it returned
/// `NATS_OK`.
@inline(__always)
func natsCall(_ op: StaticString, _ body: () -> natsStatus) throws(NatsError) {
    let status = body()
    guard status == NATS_OK else { throw NatsError(status: status, operation: op) }
}

/// The status gate for JetStream calls that report a `jsErrCode`.
@inline(__always)
func jsCall(_ op: StaticString, _ body: (UnsafeMutablePointer<jsErrCode>) -> natsStatus) throws(NatsError) {
    var jsError = jsErrCode(rawValue: 0)
    let status = body(&jsError)
    guard status == NATS_OK else { throw NatsError(status: status, operation: op, jsError: jsError) }
}
