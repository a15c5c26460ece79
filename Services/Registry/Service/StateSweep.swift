import Logging
import MeshClient
import MeshCore
import MeshRuntime
import Metrics
import Nats
import ServiceLifecycle
import Synchronization

/// Removes agent state checkpoints that outlived their agent.
///
/// The worker hosting an agent deletes its checkpoint when the agent is deleted. A worker
/// that was dead or frozen at the delete never does, and the shard's next owner does not
/// host the deleted agent, so its checkpoint would stay in KV `mesh_state` for good (an
/// agent created again under the id ignores it: incarnations, see `StateCheckpoints`).
///
/// Every ``interval`` (± 25 % at random, so that registry instances spread out; two that
/// overlap do no harm) a round lists the bucket's keys and revisions (values are not read),
/// then reads the last sequence of `mesh_agents`, waits until the directory has applied
/// it, and deletes each agent's checkpoint that the directory does not hold, by a
/// compare-and-set on the listed revision.
///
/// Why that never deletes a live agent's state: a checkpoint is written only after its
/// agent's create is stored, so an agent whose checkpoint was listed and which still
/// exists is in the directory once the directory has applied everything stored before the
/// listing ended. A key written since the listing (a new life of the id) fails the
/// compare-and-set and stays.
struct StateSweep: Service {
    /// Time between rounds; zero turns the sweep off.
    let interval: Duration
    /// The `mesh_state` bucket.
    let state: KeyValue
    /// The stream behind `mesh_agents`.
    let agentsStream: String
    let directory: AgentDirectory
    let logger: Logger
    /// Deletes in flight at once.
    static let window = 256
    /// How long a round waits for the directory to catch up with `mesh_agents`.
    static let catchUpTimeout = Duration.seconds(30)
    private let swept = Counter(label: "mesh_state_swept_total")

    func run() async throws {
        guard interval > .zero else { return }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval * Double.random(in: 0.75...1.25)) }
            } catch { return }
            do {
                try await sweep()
            } catch {
                logger.warning("state sweep failed; the next round tries again", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One round.
    /// - Returns: the checkpoints deleted.
    /// - Throws: ``MeshError`` `unavailable` or `timeout` when NATS or the directory fails it.
    @discardableResult
    func sweep() async throws(MeshError) -> Int {
        // Agents the directory holds now are left out at once (a bucket of a million
        // checkpoints is not kept in memory); the others are looked up again below.
        let candidates = try await listCheckpoints { directory.record(id: $0) == nil }
        guard !candidates.isEmpty else { return 0 }
        let (state, stream) = (self.state, agentsStream)
        let last: UInt64
        do {
            last = try await BlockingIO.run { () throws(NatsError) in try state.jetStream.streamInfo(stream).state.lastSeq }
        } catch {
            throw MeshError(.unavailable, "reading the last sequence of \(stream): \(error.code)")
        }
        let deadline = ContinuousClock.now + Self.catchUpTimeout
        while directory.revisions.agents < last {
            guard ContinuousClock.now < deadline else {
                throw MeshError(.timeout, "the directory did not reach revision \(last) of \(stream) in time")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let orphans = candidates.filter { directory.record(id: $0.key) == nil }
        var deleted = 0
        for start in stride(from: 0, to: orphans.count, by: Self.window) {
            deleted += await delete(orphans[start..<min(start + Self.window, orphans.count)])
        }
        swept.increment(by: deleted)
        if deleted > 0 {
            logger.info("checkpoints of deleted agents removed", metadata: ["mesh.checkpoints": "\(deleted)", "mesh.candidates": "\(orphans.count)"])
        }
        return deleted
    }

    /// The agent checkpoints stored now (metadata only) whose id `keep` accepts.
    private func listCheckpoints(_ keep: (String) -> Bool) async throws(MeshError) -> [KeyValueEntry] {
        let watcher: KeyValueWatcher
        do { watcher = try state.watch(metaOnly: true, bufferSize: 4096) } catch {
            throw MeshError(.unavailable, "listing \(state.bucket): \(error.code)")
        }
        defer { watcher.stop() }
        var entries: [KeyValueEntry] = []
        for await event in watcher {
            switch event {
            case .entry(let entry):
                // Agent ids only: the shard hand-over and drain markers share the bucket.
                if entry.operation == .put, (try? AgentID(entry.key)) != nil, keep(entry.key) { entries.append(entry) }
            case .initialValuesDone:
                return entries
            }
        }
        throw MeshError(.unavailable, "listing \(state.bucket): the watch ended early")
    }

    /// Deletes each entry's key while it is still at the entry's revision.
    /// - Returns: how many were deleted.
    private func delete(_ entries: ArraySlice<KeyValueEntry>) async -> Int {
        guard !entries.isEmpty else { return 0 }
        return await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
            let tally = Mutex((pending: entries.count, deleted: 0))
            let settle: @Sendable (Bool) -> Void = { ok in
                let finished = tally.withLock { tally -> Int? in
                    tally.pending -= 1
                    if ok { tally.deleted += 1 }
                    return tally.pending == 0 ? tally.deleted : nil
                }
                if let finished { done.resume(returning: finished) }
            }
            for entry in entries {
                do {
                    try state.deleteAsync(entry.key, expectedRevision: entry.revision) { result in settle((try? result.get()) != nil) }
                } catch {
                    settle(false)
                }
            }
        }
    }
}
