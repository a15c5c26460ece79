import MeshCore

/// `fail`: fails on demand, for supervision tests. Otherwise it echoes.
///
/// ```json
/// config:   {"everyNth": 3}       (optional: every 3rd action fails; 0 = never)
/// "fail"    → the agent fails (the handler throws a BehaviorFailure)
/// "hang"    → never answers until cancelled: overruns its deadline, so the agent fails by timeout
/// "reject"  → answers invalid_argument; the agent keeps running (a MeshError is an answer, not a failure)
/// other     → the payload, unless it is the Nth action
/// ```
/// The action count is not checkpointed: a restarted agent counts from zero.
public struct FailKind: AgentBehavior {
    /// The registered name, `fail`.
    public static let kindName = AgentKindName.fail

    public struct Configuration: Decodable, Sendable {
        /// Fail every Nth action (counting all actions since start). Default 0 (never).
        public var everyNth: Int?
    }

    let everyNth: Int
    private(set) var handled = 0

    public init(configuration: Configuration, setup: AgentSetup) throws {
        everyNth = try Check.range(configuration.everyNth, "everyNth", in: 0...1_000_000_000, default: 0, kind: "fail")
    }

    public mutating func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        handled += 1
        switch action {
        case "fail":
            throw BehaviorFailure("failure requested by action 'fail'")
        case "hang":
            while true { try await Task.sleep(for: .seconds(3600)) }
        case "reject":
            throw MeshError(.invalidArgument, "fail: rejected on request (the agent keeps running)")
        default:
            if everyNth > 0, handled % everyNth == 0 {
                throw BehaviorFailure("action \(handled) is a multiple of everyNth=\(everyNth)")
            }
            return payload
        }
    }

    public func mayChangeState(_ action: String) -> Bool { false }
}
