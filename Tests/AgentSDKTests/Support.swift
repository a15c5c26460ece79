import AgentSDK
import Dispatch
import Foundation
import Logging
import MeshCore
import Synchronization
import Testing

let quietLogger = Logger(label: "mesh.agent-sdk-tests", factory: { _ in SwiftLogNoOpLogHandler() })

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
func agent(_ id: String) -> AgentID { try! AgentID(id) }

/// Parses a JSON object reply.
func object(_ reply: [UInt8]) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: Data(reply))
    return try #require(value as? [String: Any])
}

func context(
    _ action: String, id: String = "test-agent", deadline: Duration = .seconds(5), dispatcher: any ActionDispatcher = UnavailableDispatcher()
) -> AgentContext {
    AgentContext(agentID: agent(id), action: action, deadline: .now + deadline, dispatcher: dispatcher, logger: quietLogger)
}

/// Creates a behaviour of `kind` from `config` with the built-in registry (or `registry`).
func behavior(_ kind: String, _ config: String = "", id: String = "test-agent", registry: KindRegistry = .builtIn()) throws(MeshError)
    -> any AgentBehavior
{
    try registry.makeBehavior(kind: kind, config: bytes(config), setup: AgentSetup(agentID: agent(id), kind: kind, logger: quietLogger))
}

extension AgentBehavior {
    /// Runs one action on a copy-in/copy-out basis, as a cell would.
    mutating func run(_ action: String, _ payload: String = "", deadline: Duration = .seconds(5), dispatcher: any ActionDispatcher = UnavailableDispatcher())
        async throws -> [UInt8]
    {
        try await handle(action, payload: bytes(payload), context: context(action, deadline: deadline, dispatcher: dispatcher))
    }
}

/// Expects `body` to throw a MeshError with `code`; returns it.
@discardableResult
func expectMeshError(_ code: MeshError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async -> MeshError? {
    do {
        try await body()
        Issue.record("expected MeshError \(code), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as MeshError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected MeshError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Polls `condition` every millisecond for up to `timeout`.
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}

/// Shared observations of ``ProbeKind`` instances and the gate they wait on.
final class Probe: Sendable {
    struct State {
        var open = false
        var entered = 0
        var running = 0
        var maxRunning = 0
        var log: [String] = []
    }

    let state = Mutex(State())

    func open() { state.withLock { $0.open = true } }
    var entered: Int { state.withLock { $0.entered } }
    var maxRunning: Int { state.withLock { $0.maxRunning } }
    var log: [String] { state.withLock { $0.log } }
}

/// A test kind: "block" waits for the probe's gate, "record" logs the payload and counts
/// (state, checkpointed), "get" returns the count, "crash" fails the agent, "stubborn"
/// waits for the gate ignoring cancellation.
struct ProbeKind: CountingProbe {
    let probe: Probe
    var count = 0

    init(configuration: NoConfiguration, setup: AgentSetup) throws {
        throw MeshError(.invalidArgument, "probe needs a probe")
    }

    init(probe: Probe) { self.probe = probe }

    mutating func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        switch action {
        case "block", "stubborn":
            probe.state.withLock {
                $0.entered += 1
                $0.running += 1
                $0.maxRunning = max($0.maxRunning, $0.running)
            }
            defer { probe.state.withLock { $0.running -= 1 } }
            while !probe.state.withLock({ $0.open }) {
                if action == "block" {
                    try await Task.sleep(for: .milliseconds(1))
                } else {
                    // Ignores cancellation but still suspends (a spin would starve the pool).
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(1)) { continuation.resume() }
                    }
                }
            }
            return payload
        default:
            return try counting(action, payload: payload)
        }
    }
}

/// A test kind that answers inline (on the sender's thread): "record" logs the payload
/// and counts, "get" returns the count, "hold" blocks its thread until the probe's gate
/// opens, "crash" fails the agent.
struct InlineProbeKind: CountingProbe {
    static let answersInline = true
    let probe: Probe
    var count = 0

    init(configuration: NoConfiguration, setup: AgentSetup) throws {
        throw MeshError(.invalidArgument, "inline-probe needs a probe")
    }

    init(probe: Probe) { self.probe = probe }

    mutating func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        try handleInline(action, payload: payload, context: context)
    }

    mutating func handleInline(_ action: String, payload: [UInt8], context: AgentContext) throws -> [UInt8] {
        switch action {
        case "hold":
            probe.state.withLock { $0.entered += 1 }
            while !probe.state.withLock({ $0.open }) { usleep(2_000) }
            return payload
        default:
            return try counting(action, payload: payload)
        }
    }
}

/// What both probe kinds share: "record" logs the payload and counts (the state,
/// checkpointed), "get" returns the count, "crash" fails the agent.
protocol CountingProbe: AgentBehavior {
    var probe: Probe { get }
    var count: Int { get set }
}

extension CountingProbe {
    mutating func counting(_ action: String, payload: [UInt8]) throws -> [UInt8] {
        switch action {
        case "record":
            count += 1
            let entry = text(payload)
            probe.state.withLock { $0.log.append(entry) }
            return payload
        case "get":
            return bytes("\(count)")
        case "crash":
            throw BehaviorFailure("crash requested")
        default:
            throw MeshError(.invalidArgument, "\(Self.self) has no such action")
        }
    }

    func snapshot() throws -> [UInt8]? { bytes("\(count)") }
    mutating func restore(from snapshot: [UInt8]) throws { count = Int(text(snapshot)) ?? 0 }
    func mayChangeState(_ action: String) -> Bool { action == "record" }
}

/// Records the runtime hooks' calls.
final class Hooks: Sendable {
    let failures = Mutex<[AgentFailure]>([])
    let changed = Mutex<[AgentID]>([])

    var failureCount: Int { failures.withLock { $0.count } }
    var lastFailure: AgentFailure? { failures.withLock { $0.last } }
    var changeCount: Int { changed.withLock { $0.count } }
}

func makeRuntime(
    probe: Probe = Probe(), hooks: Hooks = Hooks(), dispatcher: any ActionDispatcher = UnavailableDispatcher(),
    configure: (inout AgentRuntime.Configuration) -> Void = { _ in }
) -> AgentRuntime {
    var registry = KindRegistry.builtIn()
    registry.register("probe", ProbeKind.self) { _, _ in ProbeKind(probe: probe) }
    registry.register("inline-probe", InlineProbeKind.self) { _, _ in InlineProbeKind(probe: probe) }
    var configuration = AgentRuntime.Configuration()
    configure(&configuration)
    return AgentRuntime(
        registry: registry, configuration: configuration, logger: quietLogger, dispatcher: dispatcher,
        onFailure: { failure in hooks.failures.withLock { $0.append(failure) } },
        onStateChange: { cell in hooks.changed.withLock { $0.append(cell.id) } })
}

/// Collects replies of `send` calls.
final class Replies: Sendable {
    let results = Mutex<[Int: Result<[UInt8], MeshError>]>([:])

    func reply(_ index: Int) -> AgentCell.Reply {
        { result in self.results.withLock { $0[index] = result } }
    }

    var count: Int { results.withLock { $0.count } }
    subscript(index: Int) -> Result<[UInt8], MeshError>? { results.withLock { $0[index] } }
}
