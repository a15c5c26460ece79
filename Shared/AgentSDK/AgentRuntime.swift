public import Logging
public import MeshCore
public import MeshProto
import NIOCore
import NIOPosix
import Synchronization

/// What the cells of one worker share: the kind registry, limits, the dispatcher, the
/// supervision and checkpoint hooks, and the deadline watchdog. One per worker process.
///
/// ```swift
/// let runtime = AgentRuntime(
///     registry: .builtIn(options), logger: logger, dispatcher: natsDispatcher,
///     onFailure: { failure in supervisor.agentFailed(failure) },       // then cell.restart(restoringFrom:)
///     onStateChange: { cell in checkpointer.markDirty(cell) })         // batch cell.checkpoint()
/// let cell = try runtime.makeCell(spec: spec, restoringFrom: savedState)
/// try cell.send("add", payload: Array(#"{"by":2}"#.utf8), deadline: .now + .seconds(2)) { result in reply(result) }
/// ```
///
/// The hooks run on whatever thread completed the action (a cooperative-pool thread, or
/// the watchdog's event-loop thread for timeouts): they must return quickly and never
/// block.
public final class AgentRuntime: Sendable {
    /// Limits and defaults applied to every cell.
    public struct Configuration: Sendable {
        /// Mailbox size when the spec says 0. Default 256.
        public var defaultMailboxCapacity: Int = 256
        /// The largest mailbox a spec may ask for. Default ``AgentLimits/maxMailboxCapacity``.
        public var maxMailboxCapacity: Int = AgentLimits.maxMailboxCapacity
        /// Action time limit when the spec says 0. Default 30 s.
        public var defaultActionTimeout: Duration = .seconds(30)
        /// The longest action time limit a spec may ask for. Default ``AgentLimits/maxActionTimeoutMs``.
        public var maxActionTimeout: Duration = .milliseconds(AgentLimits.maxActionTimeoutMs)
        /// How often running actions are checked against their deadline: a timeout is
        /// declared at most this much late. Default 5 ms.
        public var deadlineResolution: Duration = .milliseconds(5)

        public init() {}
    }

    /// The kinds cells can be created from.
    public let registry: KindRegistry
    /// Limits and defaults.
    public let configuration: Configuration
    /// The logger handed (with the agent's id) to behaviours.
    public let logger: Logger
    let dispatcher: any ActionDispatcher
    let onFailure: @Sendable (AgentFailure) -> Void
    let onStateChange: @Sendable (AgentCell) -> Void
    let watchdog: DeadlineWatchdog

    /// - Parameters:
    ///   - registry: the kinds (usually ``KindRegistry/builtIn(_:)`` plus custom ones).
    ///   - dispatcher: how behaviours reach other agents (``UnavailableDispatcher`` when none).
    ///   - onFailure: the supervision hook: an agent failed (its handler threw something
    ///     that is not a ``MeshError``, or overran its deadline) and waits for
    ///     ``AgentCell/restart(restoringFrom:)``.
    ///   - onStateChange: called when a cell goes from "checkpointed" to "changed" (once,
    ///     until the next ``AgentCell/markCheckpointed(version:)``): collect the cells
    ///     and checkpoint them in batches.
    public init(
        registry: KindRegistry, configuration: Configuration = Configuration(), logger: Logger,
        dispatcher: any ActionDispatcher = UnavailableDispatcher(),
        onFailure: @escaping @Sendable (AgentFailure) -> Void = { _ in },
        onStateChange: @escaping @Sendable (AgentCell) -> Void = { _ in }
    ) {
        self.registry = registry
        self.configuration = configuration
        self.logger = logger
        self.dispatcher = dispatcher
        self.onFailure = onFailure
        self.onStateChange = onStateChange
        self.watchdog = DeadlineWatchdog(
            loop: MultiThreadedEventLoopGroup.singleton.next(),
            tick: .nanoseconds(max(configuration.deadlineResolution, .milliseconds(1)).totalNanoseconds))
    }

    /// Creates the cell of an agent and its behaviour, restored from `snapshot` if given.
    /// - Parameters:
    ///   - mailboxCapacity: queued actions beyond the running one (nil or 0: the default).
    ///   - actionTimeout: per-action limit (nil or zero: the default).
    ///   - incarnation: the agent's life (``AgentCell/incarnation``; 0: unknown).
    /// - Throws: ``MeshError``: `invalid_argument` for an unknown kind, a bad config or
    ///   out-of-range limits, `too_large` for an oversized config, `internal` for a
    ///   snapshot that cannot be restored.
    public func makeCell(
        id: AgentID, kind: String, config: [UInt8] = [], labels: [String: String] = [:],
        mailboxCapacity: Int? = nil, actionTimeout: Duration? = nil, incarnation: UInt64 = 0, restoringFrom snapshot: [UInt8]? = nil
    ) throws(MeshError) -> AgentCell {
        let capacity = mailboxCapacity.flatMap { $0 == 0 ? nil : $0 } ?? configuration.defaultMailboxCapacity
        guard (1...configuration.maxMailboxCapacity).contains(capacity) else {
            throw MeshError(.invalidArgument, "mailbox capacity must be within 1...\(configuration.maxMailboxCapacity)")
        }
        let timeout = actionTimeout.flatMap { $0 == .zero ? nil : $0 } ?? configuration.defaultActionTimeout
        guard timeout > .zero, timeout <= configuration.maxActionTimeout else {
            throw MeshError(.invalidArgument, "action timeout must be positive and at most \(configuration.maxActionTimeout)")
        }
        let behavior = try registry.makeBehavior(
            kind: kind, config: config, setup: AgentSetup(agentID: id, kind: kind, labels: labels, logger: logger),
            restoringFrom: snapshot)
        return AgentCell(
            id: id, kind: kind, config: config, labels: labels, capacity: capacity, actionTimeout: timeout, incarnation: incarnation,
            behavior: behavior, runtime: self)
    }

    /// Creates the cell of the agent `spec` describes (id checked, 0 limits meaning the
    /// defaults), restored from `snapshot` if given.
    /// - Throws: as ``makeCell(id:kind:config:labels:mailboxCapacity:actionTimeout:incarnation:restoringFrom:)``,
    ///   and `invalid_id` for a bad id.
    public func makeCell(spec: AgentSpec, restoringFrom snapshot: [UInt8]? = nil) throws(MeshError) -> AgentCell {
        try makeCell(
            id: AgentID(spec.id), kind: spec.kind, config: spec.config, labels: spec.labels,
            mailboxCapacity: Int(spec.mailboxCapacity), actionTimeout: .milliseconds(Int64(spec.actionTimeoutMs)),
            incarnation: spec.incarnation, restoringFrom: snapshot)
    }

    func makeBehavior(for cell: AgentCell, restoringFrom snapshot: [UInt8]?) throws(MeshError) -> any AgentBehavior {
        try registry.makeBehavior(
            kind: cell.kind, config: cell.config,
            setup: AgentSetup(agentID: cell.id, kind: cell.kind, labels: cell.labels, logger: logger), restoringFrom: snapshot)
    }
}

/// Why an agent failed: handed to the supervision hook.
public struct AgentFailure: Sendable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// The handler threw an error that is not a ``MeshError``.
        case threw
        /// The handler was still running at the action's deadline (it was cancelled).
        case timedOut
    }

    /// The failed agent's cell (restart it with ``AgentCell/restart(restoringFrom:)``).
    public let cell: AgentCell
    /// What happened.
    public let reason: Reason
    /// The action that was running (shortened to 64 characters).
    public let action: String
    /// The error the handler threw (nil for a timeout). Its description is the kind's
    /// business: log it only if you trust the kind not to put payloads in errors.
    public let error: (any Error)?

    /// The failed agent.
    public var agentID: AgentID { cell.id }

    /// A description safe to log: agent, reason, action — never the error's text.
    public var description: String {
        switch reason {
        case .threw: "agent \(cell.id) (kind \(cell.kind)) failed in action '\(action)': its handler threw \(error.map { "\(type(of: $0))" } ?? "an error")"
        case .timedOut: "agent \(cell.id) (kind \(cell.kind)) failed: action '\(action)' overran its deadline"
        }
    }
}

/// Enforces the deadlines of running actions. Cells register themselves when an action
/// starts; a repeated task on one NIO event loop (not the cooperative pool, so it fires
/// even when handlers hog every pool thread) checks them every tick and removes cells
/// whose action has ended. The task runs only while actions run (it stops after a second
/// without any), so an idle worker has no timer.
final class DeadlineWatchdog: Sendable {
    private struct State {
        var cells: [ObjectIdentifier: AgentCell] = [:]
        var task: RepeatedTask?
        var idleTicks = 0
    }

    private let state = Mutex(State())
    private let loop: any EventLoop
    private let tick: TimeAmount
    private let idleTicksBeforeStop: Int

    init(loop: any EventLoop, tick: TimeAmount) {
        self.loop = loop
        self.tick = tick
        self.idleTicksBeforeStop = max(1, Int(1_000_000_000 / max(tick.nanoseconds, 1)))
    }

    /// Watches `cell` until the sweep finds it idle. Called after the cell set its running action.
    func watch(_ cell: AgentCell) {
        state.withLock { state in
            state.cells[ObjectIdentifier(cell)] = cell
            if state.task == nil {
                state.idleTicks = 0
                state.task = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [weak self] _ in self?.sweep() }
            }
        }
    }

    private func sweep() {
        let now = ContinuousClock.now
        let cells = state.withLock { Array($0.cells.values) }
        var idle: [AgentCell] = []
        for cell in cells where !cell.expireIfOverdue(now: now) {
            idle.append(cell)
        }
        state.withLock { state in
            // A cell is dropped only if it is still idle now: one that started an action
            // meanwhile has set its running action before calling `watch`, which waits for
            // this lock — so it is either seen running here or re-added right after.
            for cell in idle where !cell.isRunningAction {
                state.cells[ObjectIdentifier(cell)] = nil
            }
            if state.cells.isEmpty {
                state.idleTicks += 1
                if state.idleTicks >= idleTicksBeforeStop {
                    state.task?.cancel()
                    state.task = nil
                }
            } else {
                state.idleTicks = 0
            }
        }
    }

    deinit {
        state.withLock { $0.task?.cancel() }
    }
}
