/// Validation of the identifiers that become NATS subject tokens.
///
/// Agent ids, node ids and service instance ids all follow one rule,
/// `[a-z0-9][a-z0-9_-]{0,62}`: lowercase, so that an id is always one legal subject
/// token and never a wildcard, a separator or whitespace. Anything else is rejected at the
/// edge with a ``MeshError`` of code ``MeshError/Code/invalidID``.
///
/// ```swift
/// let id = try AgentID("pricing-expert-1")
/// let subject = subjects.action(shard: shardMap.shard(of: id), agent: id)
/// ```
public enum Identifier {
    /// The longest allowed id, in bytes.
    public static let maxLength = 63

    /// Checks `text` against `[a-z0-9][a-z0-9_-]{0,62}` without allocating.
    public static func isValid(_ text: some StringProtocol) -> Bool {
        var count = 0
        for byte in text.utf8 {
            count += 1
            if count > maxLength { return false }
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): continue
            case UInt8(ascii: "_"), UInt8(ascii: "-"): if count == 1 { return false }
            default: return false
            }
        }
        return count > 0
    }

    /// Validates `text` as an id of the given kind.
    /// - Throws: ``MeshError`` with code `invalid_id` and a message that says what is allowed.
    public static func validate(_ text: String, kind: String) throws(MeshError) {
        guard isValid(text) else {
            let shown = text.count > 80 ? String(text.prefix(80)) + "…" : text
            throw MeshError(
                .invalidID,
                "invalid \(kind) id \(String(reflecting: shown)): must match [a-z0-9][a-z0-9_-]{0,62} (lowercase letters, digits, '_' and '-', 1-63 bytes, not starting with '_' or '-')"
            )
        }
    }
}

/// The id of an agent, validated on construction (see ``Identifier``).
public struct AgentID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The id's text, guaranteed to be a single legal subject token.
    public let rawValue: String

    /// - Throws: ``MeshError`` `invalid_id` when `rawValue` breaks the id rule.
    public init(_ rawValue: String) throws(MeshError) {
        try Identifier.validate(rawValue, kind: "agent")
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: AgentID, rhs: AgentID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The id of a node (a worker process) or of a service instance, validated like an agent id.
public struct NodeID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The id's text, guaranteed to be a single legal subject token.
    public let rawValue: String

    /// - Throws: ``MeshError`` `invalid_id` when `rawValue` breaks the id rule.
    public init(_ rawValue: String) throws(MeshError) {
        try Identifier.validate(rawValue, kind: "node")
        self.rawValue = rawValue
    }

    /// A fresh random id such as `node-3f9a1c0b7d2e`, for instances started without one.
    public static func random(prefix: String = "node") -> NodeID {
        let suffix = (0..<12).map { _ in "0123456789abcdef".randomElement()! }
        // Safe: the prefix is a caller constant and the suffix is hex.
        return try! NodeID("\(prefix)-\(String(suffix))")
    }

    public var description: String { rawValue }
    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The mesh's software version, reported by discovery and heartbeats.
public enum MeshVersion {
    public static let current = "0.1.0"
}
