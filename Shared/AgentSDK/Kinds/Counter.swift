import MeshCore

/// `counter`: a stateful integer (checkpointed).
///
/// ```json
/// config:  {"initial": 0}                       (optional)
/// "add"    {"by": 5}  → {"value": 5}            (payload optional: by 1; negative allowed)
/// "get"    any        → {"value": 5}
/// "reset"  any        → {"value": <initial>}
/// snapshot {"value": 5}
/// ```
/// Overflow of a 64-bit signed value answers `invalid_argument` and leaves the value as is.
public struct CounterKind: AgentBehavior {
    /// The registered name, `counter`.
    public static let kindName = AgentKindName.counter

    public struct Configuration: Decodable, Sendable {
        /// The starting value (and the value `reset` returns to). Default 0.
        public var initial: Int64?
    }

    struct Add: Decodable { var by: Int64? }
    struct Value: Codable { var value: Int64 }

    /// The current value.
    public private(set) var value: Int64
    private let initial: Int64

    public init(configuration: Configuration, setup: AgentSetup) {
        initial = configuration.initial ?? 0
        value = initial
    }

    public static let answersInline = true

    public mutating func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        try handleInline(action, payload: payload, context: context)
    }

    public mutating func handleInline(_ action: String, payload: [UInt8], context: AgentContext) throws -> [UInt8] {
        switch action {
        case "add":
            let by = try JSONCoding.decode(Add.self, from: payload, what: "counter action 'add'").by ?? 1
            let (sum, overflow) = value.addingReportingOverflow(by)
            guard !overflow else { throw MeshError(.invalidArgument, "counter action 'add': the value would overflow a 64-bit integer") }
            value = sum
        case "get":
            break
        case "reset":
            value = initial
        default:
            throw MeshError(.invalidArgument, "kind counter has no action '\(Check.shown(action))'; actions: add, get, reset")
        }
        return JSONCoding.encode(Value(value: value))
    }

    public func snapshot() throws -> [UInt8]? { JSONCoding.encode(Value(value: value)) }

    public mutating func restore(from snapshot: [UInt8]) throws {
        value = try JSONCoding.decode(Value.self, from: snapshot, what: "counter snapshot").value
    }

    public func mayChangeState(_ action: String) -> Bool { action != "get" }
}
