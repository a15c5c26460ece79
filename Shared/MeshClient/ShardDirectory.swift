public import MeshCore
import MeshProto
public import Nats
public import ServiceLifecycle
import Synchronization

/// A live copy of KV `mesh_shards`: which node owns each shard, at which epoch. Fed by a
/// KV watch; lookups are a lock and an array read.
///
/// The action client stamps requests with the epoch it knows, so an owner that has
/// already handed a shard over refuses them; workers use the same view to learn which
/// shards they own.
///
/// ```swift
/// let shards = try ShardDirectory(kv: resources.shards, shardCount: 64)
/// group.addTask { await shards.run() }        // or run it as a Service
/// await shards.waitUntilLoaded()
/// shards.owner(of: 7)   // (node: worker-2, epoch: 12)
/// ```
public final class ShardDirectory: Service, Sendable {
    /// One shard's owner and epoch; `node` is nil while the shard has no owner.
    public struct Owner: Sendable, Hashable {
        public var node: NodeID?
        public var epoch: UInt64
        /// The owner before this assignment, `nil` if none.
        public var previous: NodeID?
        /// True when the previous owner was alive when the shard moved (a join, a drain or
        /// a rebalance, not a lost node), so it hands the agents' newest state over.
        public var previousAlive: Bool
        /// Why the shard got this owner; nil when the assignment names no known reason.
        public var reason: ShardMoveReason?

        public init(node: NodeID?, epoch: UInt64, previous: NodeID? = nil, previousAlive: Bool = false, reason: ShardMoveReason? = nil) {
            self.node = node
            self.epoch = epoch
            self.previous = previous
            self.previousAlive = previousAlive
            self.reason = reason
        }
    }

    /// The number of shards.
    public let shardCount: Int
    private let owners: Mutex<[Owner]>
    private let watcher: KeyValueWatcher
    private let listeners = Mutex<[@Sendable (Int, Owner) -> Void]>([])
    /// Callers of ``waitForMove(of:from:)`` by shard, each under a token of its own.
    private let moveWaiters = Mutex<(next: UInt64, byShard: [Int: [UInt64: CheckedContinuation<Void, Never>]])>((0, [:]))

    private let loaded = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Watches `kv` (KV `mesh_shards`); call ``run()`` (a `Service`) to keep the copy
    /// current, and ``waitUntilLoaded()`` before the first lookup.
    public init(kv: KeyValue, shardCount: Int) throws(NatsError) {
        self.shardCount = shardCount
        self.owners = Mutex(Array(repeating: Owner(node: nil, epoch: 0), count: shardCount))
        self.watcher = try kv.watch()
    }

    /// Applies the watch's updates until ``stop()`` or cancellation.
    public func run() async {
        await withTaskCancellationHandler {
            for await event in watcher {
                switch event {
                case .initialValuesDone: markLoaded()
                case .entry(let entry): apply(entry)
                }
            }
        } onCancel: { [watcher] in
            watcher.stop()
        }
        markLoaded()  // never leave a waiter hanging
    }

    /// Returns once the current assignments have been read.
    public func waitUntilLoaded() async {
        await withCheckedContinuation { continuation in
            let resumeNow = loaded.withLock { state -> Bool in
                if state.done { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func markLoaded() {
        let waiters = loaded.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The owner a `mesh_shards` entry records (no node at epoch 0 for a deleted or
    /// unreadable one).
    public static func owner(of entry: KeyValueEntry) -> Owner {
        guard entry.operation == .put, let assignment = try? ShardAssignment(serializedBytes: entry.value) else { return Owner(node: nil, epoch: 0) }
        let previous = try? NodeID(assignment.previousNodeId)
        let reason = ShardMoveReason(rawValue: assignment.reason)
        return Owner(
            node: try? NodeID(assignment.nodeId), epoch: assignment.epoch, previous: previous,
            previousAlive: previous != nil && reason?.previousOwnerAlive == true, reason: reason)
    }

    private func apply(_ entry: KeyValueEntry) {
        guard let shard = Int(entry.key), (0..<shardCount).contains(shard) else { return }
        let owner = Self.owner(of: entry)
        let changed = owners.withLock { owners -> Bool in
            // Epochs only grow: an older value arriving late never replaces a newer one.
            guard owner.epoch >= owners[shard].epoch || entry.operation != .put else { return false }
            owners[shard] = owner
            return true
        }
        guard changed else { return }
        for listener in listeners.withLock({ $0 }) { listener(shard, owner) }
        let waiting = moveWaiters.withLock { $0.byShard.removeValue(forKey: shard) } ?? [:]
        for waiter in waiting.values { waiter.resume() }
    }

    /// Returns once `shard`'s epoch is no longer `epoch` (at once when it is not), or when
    /// the calling task is cancelled.
    public func waitForMove(of shard: Int, from epoch: UInt64) async {
        guard (0..<shardCount).contains(shard) else { return }
        let token = moveWaiters.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = moveWaiters.withLock { state -> Bool in
                    // Checked under the waiters' lock: a move applied before this point is
                    // seen here, one applied after it finds the waiter.
                    guard !Task.isCancelled, owner(of: shard).epoch == epoch else { return false }
                    state.byShard[shard, default: [:]][token] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            let waiter = moveWaiters.withLock { state -> CheckedContinuation<Void, Never>? in
                let waiter = state.byShard[shard]?.removeValue(forKey: token)
                if state.byShard[shard]?.isEmpty == true { state.byShard[shard] = nil }
                return waiter
            }
            waiter?.resume()
        }
    }

    /// The owner of `shard` as last seen.
    public func owner(of shard: Int) -> Owner {
        guard (0..<shardCount).contains(shard) else { return Owner(node: nil, epoch: 0) }
        return owners.withLock { $0[shard] }
    }

    /// Every shard's owner.
    public var all: [Owner] { owners.withLock { $0 } }

    /// Calls `listener` (on the watch's thread) after every change of a shard's owner.
    public func onChange(_ listener: @escaping @Sendable (_ shard: Int, _ owner: Owner) -> Void) {
        listeners.withLock { $0.append(listener) }
    }

    /// Stops watching.
    public func stop() { watcher.stop() }

    deinit { watcher.stop() }
}
