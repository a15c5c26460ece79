import MeshCore

/// `fanout`: sends each action to several agents through the ``ActionDispatcher`` and
/// aggregates their replies — the circle-of-experts pattern. Stateless.
///
/// ```json
/// config: {"targets": ["expert-a", "expert-b"],      // agent ids, and/or
///          "selector": "role=expert,tier in (a,b)",  // label selector (or {"role": "expert"}), resolved on every action
///          "mode": "all" | "first" | "majority",     // default "all"
///          "timeoutMs": 2000,                        // optional; never past the action's deadline
///          "maxTargets": 64,                         // default 64, at most 1024
///          "action": "ask"}                          // optional: forward under this name (default: same name)
/// any action, any payload →
/// {"mode": "majority", "ok": true, "targets": 3, "succeeded": 3, "failed": 0, "cancelled": 0,
///  "result": <winning reply>,
///  "results": [{"agent": "expert-a", "status": "ok", "reply": <JSON reply>},
///              {"agent": "expert-b", "status": "error", "error": {"code": "timeout", "message": "…"}},
///              {"agent": "expert-c", "status": "cancelled"}]}
/// ```
/// - `all`: waits for every target; `ok` when all succeeded; `result` absent.
/// - `first`: the first success wins, the others are cancelled; `ok` when one succeeded.
/// - `majority`: replies vote (compared as canonical JSON, else as bytes); done as soon as
///   one reply is given by more than half of the targets (`ok`, `result` = that reply) or
///   when no reply can reach a majority any more.
///
/// The action answers this document even when `ok` is false (every target's error is in
/// it); it answers an error only when there is nothing to ask: `unavailable` when the
/// selector matches no agent, or the dispatcher's error when the selector cannot be
/// resolved. A reply that is not JSON appears as `"replyText"` (UTF-8, lossy). The fanout
/// agent never sends to itself (that would deadlock on its own mailbox).
public struct FanoutKind: AgentBehavior {
    /// The registered name, `fanout`.
    public static let kindName = AgentKindName.fanout

    /// A label selector in a config: `"k=v,k2 in (a,b)"` or `{"k": "v"}`.
    public enum SelectorConfiguration: Decodable, Sendable {
        case text(String)
        case labels([String: String])

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self = .text(text)
            } else {
                self = .labels(try container.decode([String: String].self))
            }
        }
    }

    /// How replies are combined.
    public enum Mode: String, Sendable, Codable {
        case all, first, majority
    }

    public struct Configuration: Decodable, Sendable {
        public var targets: [String]?
        /// A selector in MeshCore's syntax, or an object of required label values.
        public var selector: SelectorConfiguration?
        public var mode: String?
        public var timeoutMs: Int?
        public var maxTargets: Int?
        public var action: String?
    }

    let targets: [AgentID]
    let selector: LabelSelector?
    let mode: Mode
    let timeout: Duration?
    let maxTargets: Int
    let forwardAs: String?
    let me: AgentID

    public init(configuration: Configuration, setup: AgentSetup) throws {
        maxTargets = try Check.range(configuration.maxTargets, "maxTargets", in: 1...1_024, default: 64, kind: "fanout")
        var ids: [AgentID] = []
        for text in configuration.targets ?? [] {
            guard let id = try? AgentID(text) else {
                throw MeshError(.invalidArgument, "fanout config: 'targets' holds an invalid agent id \(String(reflecting: Check.shown(text)))")
            }
            if !ids.contains(id) { ids.append(id) }
        }
        guard ids.count <= maxTargets else {
            throw MeshError(.invalidArgument, "fanout config: \(ids.count) targets exceed maxTargets=\(maxTargets)")
        }
        targets = ids
        switch configuration.selector {
        case nil: selector = nil
        case .text(let text): selector = try LabelSelector(text)
        case .labels(let labels): selector = LabelSelector(requirements: labels.sorted { $0.key < $1.key }.map { .equals($0.key, $0.value) })
        }
        guard !targets.isEmpty || selector != nil else {
            throw MeshError(.invalidArgument, "fanout config: give 'targets' (agent ids) or 'selector' (labels), or both")
        }
        if let text = configuration.mode {
            guard let mode = Mode(rawValue: text) else {
                throw MeshError(.invalidArgument, "fanout config: 'mode' must be one of all, first, majority")
            }
            self.mode = mode
        } else {
            mode = .all
        }
        timeout = try configuration.timeoutMs.map { .milliseconds(try Check.range($0, "timeoutMs", in: 1...600_000, default: 0, kind: "fanout")) }
        if let action = configuration.action, action.isEmpty || action.utf8.count > 256 {
            throw MeshError(.invalidArgument, "fanout config: 'action' must be 1...256 bytes")
        }
        forwardAs = configuration.action
        me = setup.agentID
    }

    public func mayChangeState(_ action: String) -> Bool { false }

    enum Outcome: Sendable {
        case ok([UInt8])
        case error(MeshError)
        case cancelled
    }

    public func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        let deadline = context.deadline(within: timeout)
        var all = targets
        if let selector {
            let found = try await context.dispatcher.agents(matching: selector, limit: maxTargets + 1, deadline: deadline)
            for id in found where !all.contains(id) { all.append(id) }
        }
        all.removeAll { $0 == me }
        all = Array(all.prefix(maxTargets))
        guard !all.isEmpty else {
            throw MeshError(.unavailable, "fanout: no target agent (the selector matches none)", retryAfter: .seconds(1))
        }
        let name = forwardAs ?? action
        let dispatcher = context.dispatcher
        let mode = self.mode
        let targetList = all
        var outcomes = [Outcome?](repeating: nil, count: targetList.count)
        var votes: [[UInt8]: Int] = [:]
        var winner: [UInt8]?
        let needed = targetList.count / 2 + 1

        await withTaskGroup(of: (Int, Outcome)?.self) { group in
            for (index, id) in targetList.enumerated() {
                group.addTask {
                    do throws(MeshError) {
                        return (index, .ok(try await dispatcher.send(name, payload: payload, to: id, deadline: deadline)))
                    } catch {
                        return (index, Task.isCancelled ? .cancelled : .error(error))
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return nil  // the deadline: stop waiting
            }
            var answered = 0
            while let next = await group.next() {
                guard let (index, outcome) = next else { break }
                outcomes[index] = outcome
                answered += 1
                if case .ok(let bytes) = outcome {
                    switch mode {
                    case .all: break
                    case .first: winner = bytes
                    case .majority:
                        let key = JSONValue(parsing: bytes)?.canonicalBytes ?? bytes
                        votes[key, default: 0] += 1
                        if votes[key]! >= needed { winner = bytes }
                    }
                }
                if winner != nil || answered == targetList.count { break }
                if mode == .majority {
                    let best = votes.values.max() ?? 0
                    if best + (targetList.count - answered) < needed { break }  // no majority possible any more
                }
            }
            group.cancelAll()
        }

        var results: [TargetResult] = []
        var succeeded = 0
        var failed = 0
        var cancelled = 0
        for (index, id) in targetList.enumerated() {
            switch outcomes[index] {
            case .ok(let bytes)?:
                succeeded += 1
                results.append(TargetResult(agent: id.rawValue, status: "ok", reply: bytes))
            case .error(let error)?:
                failed += 1
                results.append(TargetResult(agent: id.rawValue, status: "error", error: ErrorBody(code: error.code.rawValue, message: error.message)))
            case .cancelled?:
                cancelled += 1
                results.append(TargetResult(agent: id.rawValue, status: "cancelled"))
            case nil:
                if winner != nil {
                    cancelled += 1
                    results.append(TargetResult(agent: id.rawValue, status: "cancelled"))
                } else {
                    failed += 1
                    results.append(
                        TargetResult(agent: id.rawValue, status: "error", error: ErrorBody(code: MeshError.Code.timeout.rawValue, message: "no reply before the fanout deadline")))
                }
            }
        }
        let ok: Bool = switch mode {
        case .all: succeeded == targetList.count
        case .first, .majority: winner != nil
        }
        return JSONCoding.encode(
            Reply(
                mode: mode.rawValue, ok: ok, targets: targetList.count, succeeded: succeeded, failed: failed, cancelled: cancelled,
                result: winner.map(Embedded.init), results: results))
    }

    struct ErrorBody: Encodable { var code: String; var message: String }

    /// Reply bytes embedded as JSON when they are JSON, else as text.
    struct Embedded: Encodable {
        var bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            if let value = JSONValue(parsing: bytes) { try container.encode(value) } else { try container.encode(String(decoding: bytes, as: UTF8.self)) }
        }
    }

    struct TargetResult: Encodable {
        var agent: String
        var status: String
        var reply: [UInt8]? = nil
        var error: ErrorBody? = nil

        enum CodingKeys: String, CodingKey { case agent, status, reply, replyText, error }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(agent, forKey: .agent)
            try container.encode(status, forKey: .status)
            if let reply {
                if let value = JSONValue(parsing: reply) {
                    try container.encode(value, forKey: .reply)
                } else {
                    try container.encode(String(decoding: reply, as: UTF8.self), forKey: .replyText)
                }
            }
            try container.encodeIfPresent(error, forKey: .error)
        }
    }

    struct Reply: Encodable {
        var mode: String
        var ok: Bool
        var targets: Int
        var succeeded: Int
        var failed: Int
        var cancelled: Int
        var result: Embedded?
        var results: [TargetResult]
    }
}
