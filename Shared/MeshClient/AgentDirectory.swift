public import Logging
public import MeshCore
public import MeshProto
public import Nats
import Synchronization

/// A client-side cache of every agent record, fed by KV watches of `mesh_agents` and
/// `mesh_status` — what the registry answers reads from, and what the gateway and the
/// action client use to resolve agents without a round trip (a lookup is a dictionary
/// read under a lock, well under 100 µs).
///
/// ```swift
/// let directory = try AgentDirectory(agents: resources.agents, status: resources.status, logger: logger)
/// Task { await directory.run() }           // or run it inside a service
/// await directory.waitUntilLoaded()        // both buckets' current values are in
/// if let record = directory.record(id) { … }
/// ```
///
/// The cache is eventually consistent: a change shows once the watch delivers it
/// (typically well under a millisecond on one server). ``run()`` ends after ``stop()``
/// or when the connection closes.
public final class AgentDirectory: Sendable {
    private let index = Mutex(AgentIndex())
    private let agentsWatcher: KeyValueWatcher
    private let statusWatcher: KeyValueWatcher
    private let loaded = LoadLatch(parts: 2)
    private let logger: Logger

    /// Starts watching both buckets (the watches run from the moment this returns; the
    /// entries are applied by ``run()``).
    /// - Parameters:
    ///   - agents: the `mesh_agents` bucket.
    ///   - status: the `mesh_status` bucket.
    ///   - bufferSize: watch events buffered per bucket before the watch waits for ``run()``.
    /// - Throws: `NatsError` when a watch cannot start.
    public init(agents: KeyValue, status: KeyValue, bufferSize: Int = 4096, logger: Logger) throws(NatsError) {
        agentsWatcher = try agents.watch(bufferSize: bufferSize)
        statusWatcher = try status.watch(bufferSize: bufferSize)
        self.logger = logger
    }

    /// Applies watch events until ``stop()`` or the connection closes.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.consume(self.agentsWatcher, isStatus: false) }
            group.addTask { await self.consume(self.statusWatcher, isStatus: true) }
        }
    }

    /// Stops both watches; ``run()`` returns.
    public func stop() {
        agentsWatcher.stop()
        statusWatcher.stop()
        loaded.release()
    }

    /// Waits until both watches have delivered the values that existed when they started.
    public func waitUntilLoaded() async { await loaded.wait() }

    /// Whether both watches have delivered their initial values.
    public var isLoaded: Bool { loaded.isOpen }

    /// The merged record of `id`, or nil when there is no such agent.
    public func record(_ id: AgentID) -> AgentRecord? { index.withLock { $0.record(id.rawValue) } }

    /// The merged record of the agent with id text `id`, or nil.
    public func record(id: String) -> AgentRecord? { index.withLock { $0.record(id) } }

    /// Number of agents.
    public var count: Int { index.withLock { $0.count } }

    /// Highest revisions applied from `mesh_agents` and `mesh_status`.
    public var revisions: (agents: UInt64, status: UInt64) { index.withLock { ($0.agentsRevision, $0.statusRevision) } }

    /// One page of agents sorted by id; see ``AgentIndex/list(selector:node:status:cursor:limit:maxBytes:)``.
    public func list(
        selector: LabelSelector = .everything, node: String? = nil, status: AgentStatus? = nil, cursor: String = "", limit: Int,
        maxBytes: Int = .max
    ) -> (records: [AgentRecord], nextCursor: String?) {
        index.withLock { $0.list(selector: selector, node: node, status: status, cursor: cursor, limit: limit, maxBytes: maxBytes) }
    }

    /// Applies a record this process has just written, before the watch brings it back
    /// (read-your-writes for the writer).
    public func applyLocal(_ record: AgentRecord) { index.withLock { $0.applyLocal(record) } }

    /// Removes an agent this process has just deleted at `revision`.
    public func removeLocal(id: String, revision: UInt64) { index.withLock { $0.removeLocal(id: id, revision: revision) } }

    private func consume(_ watcher: KeyValueWatcher, isStatus: Bool) async {
        for await event in watcher {
            switch event {
            case .initialValuesDone:
                loaded.arrive()
            case .entry(let entry):
                let change = index.withLock { isStatus ? $0.applyStatus(entry) : $0.applyAgent(entry) }
                if change == .corrupt {
                    logger.warning(
                        "undecodable agent record ignored",
                        metadata: ["mesh.agent.id": "\(entry.key)", "mesh.kv.bucket": "\(entry.bucket)", "mesh.kv.revision": "\(entry.revision)"])
                }
            }
        }
        loaded.release()
    }
}

/// Opens once `parts` arrivals happened (or on release); waiters resume then.
final class LoadLatch: Sendable {
    private struct State {
        var remaining: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(parts: Int) { state = Mutex(State(remaining: parts)) }

    var isOpen: Bool { state.withLock { $0.remaining <= 0 } }

    func arrive() { resume { $0.remaining -= 1 } }

    func release() { resume { $0.remaining = 0 } }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state -> Bool in
                if state.remaining <= 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    private func resume(_ change: (inout State) -> Void) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            change(&state)
            guard state.remaining <= 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}
