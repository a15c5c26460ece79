/// The mesh's typed error: a stable code (sent on the wire in `ErrorReply` and mapped to
/// one HTTP status at the gateway) and a message safe to show and log — never a secret,
/// SQL text or a payload.
public struct MeshError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, machine-readable error code.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// An id failed the id rule.
        public static let invalidID = Code(rawValue: "invalid_id")
        /// A malformed or out-of-range argument, body or configuration value.
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// The thing asked for does not exist.
        public static let notFound = Code(rawValue: "not_found")
        /// It exists already.
        public static let alreadyExists = Code(rawValue: "already_exists")
        /// A compare-and-set lost: the revision given is not the current one.
        public static let conflict = Code(rawValue: "conflict")
        /// The agent's mailbox is full: retry later (back-pressure).
        public static let busy = Code(rawValue: "busy")
        /// Temporarily not servable (e.g. shard in transit): retry after the hint.
        public static let unavailable = Code(rawValue: "unavailable")
        /// The deadline passed.
        public static let timeout = Code(rawValue: "timeout")
        /// Nobody serves the subject right now.
        public static let noResponders = Code(rawValue: "no_responders")
        /// A payload or configuration exceeds its bound.
        public static let tooLarge = Code(rawValue: "too_large")
        /// Authentication missing or wrong.
        public static let unauthenticated = Code(rawValue: "unauthenticated")
        /// Authenticated but not allowed.
        public static let permissionDenied = Code(rawValue: "permission_denied")
        /// A request was stamped with an older shard epoch than the owner's.
        public static let staleEpoch = Code(rawValue: "stale_epoch")
        /// A bug or an unexpected failure of a dependency.
        public static let internalError = Code(rawValue: "internal")

        public var description: String { rawValue }
    }

    /// The error's code.
    public var code: Code
    /// A human-readable message, safe to log and to return to a client.
    public var message: String
    /// For `busy` and `unavailable`: when to retry.
    public var retryAfter: Duration?

    public init(_ code: Code, _ message: String, retryAfter: Duration? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
