import Foundation
public import MeshCore
public import MeshProto

/// The bounds an agent spec must keep, checked at every edge (the registry, the client,
/// `meshctl`) with the same code, so a bad spec is refused before it is stored.
///
/// | field | rule |
/// |---|---|
/// | `id` | ``AgentID`` (`[a-z0-9][a-z0-9_-]{0,62}`) → `invalid_id` |
/// | `kind` | a built-in kind (``AgentKindName/builtIn``) or one of `extraKinds` |
/// | `config` | empty or a JSON object, at most ``maxConfigBytes`` (64 KiB) → `too_large` |
/// | `labels` | ``Labels`` rules (≤ 64, Kubernetes-like keys and values) |
/// | `group` | empty or an id |
/// | `mailbox_capacity` | ≤ ``maxMailboxCapacity`` (65 536) |
/// | `action_timeout_ms` | ≤ ``maxActionTimeoutMs`` (10 min) |
/// | `max_restarts` | ≤ ``maxRestarts`` (1 000) |
/// | `period_seconds` | ≤ ``maxPeriodSeconds`` (1 day) |
/// | restart type, group strategy | a known value |
///
/// Every failure is a ``MeshError`` (`invalid_id`, `invalid_argument` or `too_large`)
/// whose message names the field.
///
/// ```swift
/// let rules = AgentSpecRules(extraKinds: ["greeter"])
/// let id = try rules.validate(spec)
/// ```
public struct AgentSpecRules: Sendable, Hashable {
    /// Largest `config`, in bytes.
    public static let maxConfigBytes = 64 * 1024
    /// Largest mailbox (``AgentLimits/maxMailboxCapacity``).
    public static let maxMailboxCapacity = UInt32(AgentLimits.maxMailboxCapacity)
    /// Longest action deadline (``AgentLimits/maxActionTimeoutMs``, 10 minutes).
    public static let maxActionTimeoutMs = UInt32(AgentLimits.maxActionTimeoutMs)
    /// Largest restart intensity count.
    public static let maxRestarts: UInt32 = 1_000
    /// Longest restart intensity window (one day).
    public static let maxPeriodSeconds: UInt32 = 86_400
    /// Longest supervision group name (the id rule).
    public static let maxGroupLength = Identifier.maxLength

    /// Kind names accepted: the built-in ones plus the extra ones.
    public let kinds: Set<String>

    /// - Parameter extraKinds: custom kinds this deployment's workers provide.
    public init(extraKinds: [String] = []) {
        kinds = Set(AgentKindName.builtIn + extraKinds)
    }

    /// Checks `spec` against every rule.
    /// - Returns: the spec's id.
    /// - Throws: ``MeshError`` `invalid_id`, `invalid_argument` or `too_large`.
    @discardableResult
    public func validate(_ spec: AgentSpec) throws(MeshError) -> AgentID {
        let id = try AgentID(spec.id)
        guard !spec.kind.isEmpty else { throw MeshError(.invalidArgument, "kind is required (one of \(kindList))") }
        guard kinds.contains(spec.kind) else {
            throw MeshError(.invalidArgument, "unknown kind \(Self.shown(spec.kind)): known kinds are \(kindList)")
        }
        try Self.validateConfig(spec.config)
        try Labels.validate(spec.labels)
        if !spec.group.isEmpty, !Identifier.isValid(spec.group) {
            throw MeshError(.invalidArgument, "group \(Self.shown(spec.group)) must match [a-z0-9][a-z0-9_-]{0,62}")
        }
        if case .unrecognized(let value) = spec.restartType {
            throw MeshError(.invalidArgument, "unknown restart type \(value): permanent, transient or temporary")
        }
        if case .unrecognized(let value) = spec.groupStrategy {
            throw MeshError(.invalidArgument, "unknown group strategy \(value): one_for_one, one_for_all or rest_for_one")
        }
        try Self.bound("mailbox_capacity", spec.mailboxCapacity, Self.maxMailboxCapacity)
        try Self.bound("action_timeout_ms", spec.actionTimeoutMs, Self.maxActionTimeoutMs)
        try Self.bound("max_restarts", spec.maxRestarts, Self.maxRestarts)
        try Self.bound("period_seconds", spec.periodSeconds, Self.maxPeriodSeconds)
        return id
    }

    /// Checks a kind-specific configuration: empty, or a JSON object of at most 64 KiB.
    /// - Throws: ``MeshError`` `too_large` or `invalid_argument`.
    public static func validateConfig(_ config: [UInt8]) throws(MeshError) {
        guard !config.isEmpty else { return }
        guard config.count <= maxConfigBytes else {
            throw MeshError(.tooLarge, "config is \(config.count) bytes; at most \(maxConfigBytes) allowed")
        }
        let object = try? JSONSerialization.jsonObject(with: Data(config), options: [])
        guard object is [String: Any] else { throw MeshError(.invalidArgument, "config must be a JSON object") }
    }

    private var kindList: String { kinds.sorted().joined(separator: ", ") }

    private static func bound(_ field: String, _ value: UInt32, _ limit: UInt32) throws(MeshError) {
        guard value <= limit else { throw MeshError(.invalidArgument, "\(field) is \(value); at most \(limit) allowed") }
    }

    static func shown(_ text: String) -> String {
        String(reflecting: text.count > 80 ? String(text.prefix(80)) + "…" : text)
    }
}

/// The JSON (and YAML) shape of an agent spec, with snake_case keys — what
/// `meshctl agents create -f` reads and what `-o json` prints:
///
/// ```json
/// {
///   "id": "counter-1",                 // required, [a-z0-9][a-z0-9_-]{0,62}
///   "kind": "counter",                 // required
///   "config": {"initial": 5},          // optional JSON object (≤ 64 KiB)
///   "labels": {"team": "search"},      // optional
///   "restart": "permanent",            // permanent | transient | temporary
///   "group": "pricing",                // optional supervision group
///   "group_strategy": "one_for_one",   // one_for_one | one_for_all | rest_for_one
///   "max_restarts": 3, "period_seconds": 5,
///   "mailbox_capacity": 1024, "action_timeout_ms": 5000
/// }
/// ```
///
/// Unknown keys are rejected (they are usually typos). A record printed as JSON adds
/// `generation`, `revision`, `status`, `node`, `shard`, `restart_count`, `last_error`,
/// `created_at`, `updated_at` (RFC 3339).
public enum AgentSpecDocument {
    /// Keys a spec document may have.
    public static let specKeys: Set<String> = [
        "id", "kind", "config", "labels", "restart", "group", "group_strategy", "max_restarts", "period_seconds",
        "mailbox_capacity", "action_timeout_ms",
    ]

    /// Parses a JSON document into a spec.
    /// - Throws: ``MeshError`` `invalid_argument` saying what is wrong.
    public static func spec(json bytes: [UInt8]) throws(MeshError) -> AgentSpec {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(bytes), options: []) } catch {
            throw MeshError(.invalidArgument, "the spec is not valid JSON")
        }
        return try spec(object: object)
    }

    /// Builds a spec from a decoded JSON (or YAML) value.
    /// - Throws: ``MeshError`` `invalid_argument` naming the bad key.
    public static func spec(object: Any) throws(MeshError) -> AgentSpec {
        guard let document = object as? [String: Any] else { throw MeshError(.invalidArgument, "the spec must be an object") }
        if let unknown = document.keys.sorted().first(where: { !specKeys.contains($0) }) {
            throw MeshError(
                .invalidArgument, "unknown key \(AgentSpecRules.shown(unknown)) in the spec; allowed: \(specKeys.sorted().joined(separator: ", "))")
        }
        var spec = AgentSpec()
        spec.id = try string(document, "id", required: true)
        spec.kind = try string(document, "kind", required: true)
        if let config = document["config"], !(config is NSNull) {
            guard config is [String: Any] else { throw MeshError(.invalidArgument, "config must be a JSON object") }
            guard let data = try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]) else {
                throw MeshError(.invalidArgument, "config cannot be encoded as JSON")
            }
            spec.config = Array(data)
        }
        if let labels = document["labels"], !(labels is NSNull) {
            guard let map = labels as? [String: Any] else { throw MeshError(.invalidArgument, "labels must be an object of strings") }
            for (key, value) in map {
                guard let text = scalarText(value) else {
                    throw MeshError(.invalidArgument, "label \(AgentSpecRules.shown(key)) must have a string value")
                }
                spec.labels[key] = text
            }
        }
        switch try string(document, "restart", required: false) {
        case "", "permanent": spec.restartType = .permanent
        case "transient": spec.restartType = .transient
        case "temporary": spec.restartType = .temporary
        case let other: throw MeshError(.invalidArgument, "restart \(AgentSpecRules.shown(other)) must be permanent, transient or temporary")
        }
        spec.group = try string(document, "group", required: false)
        switch try string(document, "group_strategy", required: false) {
        case "", "one_for_one": spec.groupStrategy = .oneForOne
        case "one_for_all": spec.groupStrategy = .oneForAll
        case "rest_for_one": spec.groupStrategy = .restForOne
        case let other:
            throw MeshError(.invalidArgument, "group_strategy \(AgentSpecRules.shown(other)) must be one_for_one, one_for_all or rest_for_one")
        }
        spec.maxRestarts = try number(document, "max_restarts")
        spec.periodSeconds = try number(document, "period_seconds")
        spec.mailboxCapacity = try number(document, "mailbox_capacity")
        spec.actionTimeoutMs = try number(document, "action_timeout_ms")
        return spec
    }

    /// The JSON form of a spec (keys as in ``specKeys``; defaults left out).
    public static func object(spec: AgentSpec) -> [String: Any] {
        var object: [String: Any] = ["id": spec.id, "kind": spec.kind]
        if !spec.config.isEmpty {
            object["config"] = (try? JSONSerialization.jsonObject(with: Data(spec.config), options: [])) ?? String(decoding: spec.config, as: UTF8.self)
        }
        if !spec.labels.isEmpty { object["labels"] = spec.labels }
        object["restart"] = name(spec.restartType)
        if !spec.group.isEmpty { object["group"] = spec.group }
        object["group_strategy"] = name(spec.groupStrategy)
        if spec.maxRestarts > 0 { object["max_restarts"] = Int(spec.maxRestarts) }
        if spec.periodSeconds > 0 { object["period_seconds"] = Int(spec.periodSeconds) }
        if spec.mailboxCapacity > 0 { object["mailbox_capacity"] = Int(spec.mailboxCapacity) }
        if spec.actionTimeoutMs > 0 { object["action_timeout_ms"] = Int(spec.actionTimeoutMs) }
        return object
    }

    /// The JSON form of a record: the spec's keys plus its state.
    public static func object(record: AgentRecord, shardMap: ShardMap? = nil) -> [String: Any] {
        var object = object(spec: record.spec)
        object["generation"] = Int(clamping: record.spec.generation)
        object["revision"] = Int(clamping: record.revision)
        object["status"] = name(record.status)
        if let placement = record.placement {
            object["node"] = placement.nodeId
            object["shard"] = Int(placement.shard)
            object["shard_epoch"] = Int(clamping: placement.shardEpoch)
        } else if let shardMap, let id = try? AgentID(record.spec.id) {
            object["shard"] = shardMap.shard(of: id)
        }
        object["restart_count"] = Int(record.restartCount)
        if let error = record.lastError { object["last_error"] = ["code": error.code, "message": error.message] }
        if record.createdAtUnixMs > 0 { object["created_at"] = timestamp(record.createdAtUnixMs) }
        if record.updatedAtUnixMs > 0 { object["updated_at"] = timestamp(record.updatedAtUnixMs) }
        if record.startedAtUnixMs > 0 { object["started_at"] = timestamp(record.startedAtUnixMs) }
        return object
    }

    /// Pretty JSON text of a value built by ``object(record:shardMap:)`` (keys sorted).
    public static func text(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The snake_case name of a status (`pending`, `running`, …).
    public static func name(_ status: AgentStatus) -> String {
        switch status {
        case .unspecified: "unspecified"
        case .pending: "pending"
        case .starting: "starting"
        case .running: "running"
        case .stopping: "stopping"
        case .stopped: "stopped"
        case .failed: "failed"
        case .restarting: "restarting"
        case .unrecognized(let value): "unrecognized(\(value))"
        }
    }

    /// The status named `text` (as ``name(_:)`` spells it), or nil.
    public static func status(named text: String) -> AgentStatus? {
        let all: [AgentStatus] = [.pending, .starting, .running, .stopping, .stopped, .failed, .restarting]
        return all.first { name($0) == text }
    }

    static func name(_ type: RestartType) -> String {
        switch type {
        case .permanent: "permanent"
        case .transient: "transient"
        case .temporary: "temporary"
        case .unrecognized(let value): "unrecognized(\(value))"
        }
    }

    static func name(_ strategy: GroupStrategy) -> String {
        switch strategy {
        case .oneForOne: "one_for_one"
        case .oneForAll: "one_for_all"
        case .restForOne: "rest_for_one"
        case .unrecognized(let value): "unrecognized(\(value))"
        }
    }

    static func timestamp(_ unixMs: Int64) -> String {
        rfc3339(unixMs: unixMs) ?? rfc3339(Date(timeIntervalSince1970: 0))
    }

    private static func string(_ document: [String: Any], _ key: String, required: Bool) throws(MeshError) -> String {
        guard let value = document[key], !(value is NSNull) else {
            if required { throw MeshError(.invalidArgument, "\(key) is required") }
            return ""
        }
        guard let text = value as? String else { throw MeshError(.invalidArgument, "\(key) must be a string") }
        return text
    }

    private static func number(_ document: [String: Any], _ key: String) throws(MeshError) -> UInt32 {
        guard let value = document[key], !(value is NSNull) else { return 0 }
        guard !(value is String), let number = value as? NSNumber, case let double = number.doubleValue,
            double == double.rounded(), double >= 0, double <= Double(UInt32.max)
        else { throw MeshError(.invalidArgument, "\(key) must be a whole number between 0 and \(UInt32.max)") }
        return UInt32(double)
    }

    private static func scalarText(_ value: Any) -> String? {
        if let text = value as? String { return text }
        if let number = value as? NSNumber { return number.stringValue }
        return nil
    }
}
