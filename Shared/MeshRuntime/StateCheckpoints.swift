public import MeshCore
public import Nats

/// Agent state checkpoints in KV `mesh_state`, fenced by shard epoch and tied to one life
/// of the agent.
///
/// Each value records the epoch of the shard owner that wrote it and the agent's
/// incarnation (`AgentSpec.incarnation`: the revision of its create), in an envelope of
/// ``headerBytes`` in front of the behaviour's snapshot. A write is a compare-and-set on
/// the key's revision, and it only replaces a checkpoint written at the same or an older
/// epoch. So a worker that lost a shard without knowing it yet — frozen, cut off from
/// NATS, or late after a timed-out hand-over — cannot overwrite what the new owner
/// restored and changed since:
///
/// - The writer passes the revision it last read or wrote. When the key is still at that
///   revision the write goes through at once (one round trip, as an unconditional put).
/// - Otherwise someone else wrote in between: the current value is read. A newer epoch
///   there means this writer is stale: ``WriteOutcome/fenced(epoch:)``, nothing written.
///   An older or equal epoch is replaced (compare-and-set again, a few attempts).
///
/// The one write a stale owner can still land is the first one after the new owner
/// restored the agent and before the new owner wrote it: the key has not moved, so the
/// compare-and-set cannot tell. The new owner's next checkpoint of that agent then
/// replaces it (its epoch is newer).
///
/// Incarnations keep an agent deleted and created again under the same id from restoring
/// the deleted one's state, wherever and whenever that state was written (its worker may
/// have been dead when the delete came, or the shard may have moved since):
/// ``restoring(_:incarnation:)`` restores only a checkpoint of the same life, and a write
/// never replaces the checkpoint of a later life (``WriteOutcome/superseded(incarnation:)``).
///
/// Values written before the envelope existed read as epoch 0 with all their bytes as the
/// state, and any owner replaces them; values of format 1 (epoch only) and agents created
/// before incarnations have incarnation 0, unknown, which matches every life.
///
/// ```swift
/// let stored = try checkpoints.read(agent)                  // state, epoch, incarnation, revision
/// let (state, known) = StateCheckpoints.restoring(stored, incarnation: spec.incarnation)
/// let outcome = try checkpoints.write(agent, state: bytes, epoch: 7, incarnation: spec.incarnation, knownRevision: known)
/// ```
public struct StateCheckpoints: Sendable {
    /// The bucket (`mesh_state`).
    public let bucket: KeyValue

    public init(bucket: KeyValue) {
        self.bucket = bucket
    }

    /// A checkpoint as stored.
    public struct Stored: Sendable, Equatable {
        /// The behaviour's snapshot.
        public var state: [UInt8]
        /// The shard epoch of the owner that wrote it (0: written without an envelope).
        public var epoch: UInt64
        /// The incarnation of the agent it belongs to (0: unknown).
        public var incarnation: UInt64
        /// The key's revision.
        public var revision: UInt64

        public init(state: [UInt8], epoch: UInt64, incarnation: UInt64 = 0, revision: UInt64) {
            (self.state, self.epoch, self.incarnation, self.revision) = (state, epoch, incarnation, revision)
        }

        init(_ entry: KeyValueEntry) {
            let (epoch, incarnation, state) = StateCheckpoints.decode(entry.value)
            self.init(state: state, epoch: epoch, incarnation: incarnation, revision: entry.revision)
        }
    }

    /// What a write did.
    public enum WriteOutcome: Sendable, Equatable {
        /// Stored at this revision.
        case written(revision: UInt64)
        /// Not stored: the key holds a checkpoint of a newer owner, written at `epoch`.
        case fenced(epoch: UInt64)
        /// Not stored: the key holds the checkpoint of a later life of this id (the agent was
        /// deleted and created again; this writer has not heard yet).
        case superseded(incarnation: UInt64)
    }

    /// Marks a value written with the envelope: "MSC" and the format (1: epoch; 2: epoch and
    /// incarnation).
    static let magic: [UInt8] = [0x4D, 0x53, 0x43]
    static let format: UInt8 = 2
    /// Envelope bytes before the snapshot: the magic, the format, the epoch and the
    /// incarnation (8 bytes each, big-endian).
    public static let headerBytes = 20
    /// The envelope of format 1, which had no incarnation.
    static let formatOneHeaderBytes = 12
    /// Compare-and-set attempts of one write while other writers keep moving the key.
    static let attempts = 4

    /// The agent's checkpoint; nil when it has none (never written, or deleted).
    /// The corresponding C function is `kvStore_Get`.
    public func read(_ agent: AgentID) throws(NatsError) -> Stored? {
        try bucket.get(agent.rawValue).map(Stored.init)
    }

    /// The checkpoints of many agents, read together (``KeyValue/values(_:timeout:)``: one
    /// request per 256 agents); agents without one are absent.
    public func read(_ agents: [AgentID]) async throws(NatsError) -> [AgentID: Stored] {
        let entries = try await bucket.values(agents.map(\.rawValue))
        var stored: [AgentID: Stored] = [:]
        for agent in agents {
            stored[agent] = entries[agent.rawValue].map(Stored.init)
        }
        return stored
    }

    /// What an agent of `incarnation` restores from its key's checkpoint `stored`: the
    /// state, and the revision to pass as `knownRevision` to its first ``write``.
    /// - A checkpoint of the same life (or of an unknown one: 0 on either side) restores.
    /// - One of an earlier life (the id was deleted, and its state outlived the delete) is
    ///   ignored: no state, and the first write replaces it.
    /// - One of a later life (this agent's spec is behind: its delete is on its way) is
    ///   ignored too, and the revision is left unknown, so that the first write reads the key
    ///   and is ``WriteOutcome/superseded(incarnation:)``.
    public static func restoring(_ stored: Stored?, incarnation: UInt64) -> (state: [UInt8]?, knownRevision: UInt64?) {
        guard let stored else { return (nil, 0) }
        if stored.incarnation == 0 || incarnation == 0 || stored.incarnation == incarnation { return (stored.state, stored.revision) }
        return stored.incarnation < incarnation ? (nil, stored.revision) : (nil, nil)
    }

    /// Writes the agent's checkpoint unless a newer owner has written one.
    /// - Parameters:
    ///   - epoch: the shard epoch this writer holds (or held, for a hand-over).
    ///   - incarnation: the agent's (`AgentSpec.incarnation`; 0: unknown).
    ///   - knownRevision: the key's revision when this writer last read or wrote it (0: it
    ///     had no checkpoint); nil when unknown, which costs a read first.
    /// - Throws: `NatsError` when NATS fails, or when other writers moved the key on every
    ///   attempt.
    /// The corresponding C functions are `kvStore_Update`, `kvStore_Create` and `kvStore_Get`.
    public func write(
        _ agent: AgentID, state: [UInt8], epoch: UInt64, incarnation: UInt64, knownRevision: UInt64?
    ) throws(NatsError) -> WriteOutcome {
        let (key, value) = (agent.rawValue, Self.encode(state, epoch: epoch, incarnation: incarnation))
        var expected = knownRevision
        var lastError = NatsError(code: .wrongLastRevision, operation: "kvStore_Update")
        for _ in 0..<Self.attempts {
            if expected == nil {
                guard let stored = try read(agent) else {
                    expected = 0
                    continue
                }
                if stored.epoch > epoch { return .fenced(epoch: stored.epoch) }
                if incarnation != 0 && stored.incarnation > incarnation { return .superseded(incarnation: stored.incarnation) }
                expected = stored.revision
            }
            do throws(NatsError) {
                let revision = expected == 0
                    ? try bucket.create(key, value) : try bucket.update(key, value, expectedRevision: expected!)
                return .written(revision: revision)
            } catch where error.code == .wrongLastRevision || error.code == .keyExists {
                lastError = error
                expected = nil  // someone wrote in between: look at what and by whom
            }
        }
        throw lastError
    }

    /// ``write(_:state:epoch:incarnation:knownRevision:)`` without holding a thread for a
    /// round trip in the common case, so that many agents' checkpoints are in flight at
    /// once: with a known revision the compare-and-set goes out asynchronously
    /// (``KeyValue/updateAsync(_:_:expectedRevision:via:completion:)``). A key that moved on
    /// meanwhile, or an unknown revision, is decided by the blocking write on ``BlockingIO``.
    /// The corresponding C functions are `js_PublishMsgAsync`, then as the blocking write's.
    public func writePipelined(
        _ agent: AgentID, state: [UInt8], epoch: UInt64, incarnation: UInt64, knownRevision: UInt64?
    ) async throws(NatsError) -> WriteOutcome {
        if let knownRevision {
            let (bucket, value) = (self.bucket, Self.encode(state, epoch: epoch, incarnation: incarnation))
            // nil: the key is no longer at the known revision.
            let fast = await withCheckedContinuation { (done: CheckedContinuation<Result<UInt64, NatsError>?, Never>) in
                do throws(NatsError) {
                    try bucket.updateAsync(agent.rawValue, value, expectedRevision: knownRevision) { result in
                        switch result {
                        case .success(let ack): done.resume(returning: .success(ack.sequence))
                        case .failure(let error) where error.code == .wrongLastRevision: done.resume(returning: nil)
                        case .failure(let error): done.resume(returning: .failure(error))
                        }
                    }
                } catch {
                    done.resume(returning: .failure(error))
                }
            }
            switch fast {
            case .success(let revision)?: return .written(revision: revision)
            case .failure(let error)?: throw error
            case nil: break
            }
        }
        let checkpoints = self
        return try await BlockingIO.run { () throws(NatsError) -> WriteOutcome in
            try checkpoints.write(agent, state: state, epoch: epoch, incarnation: incarnation, knownRevision: nil)
        }
    }

    /// The stored form of a checkpoint (format 2).
    public static func encode(_ state: [UInt8], epoch: UInt64, incarnation: UInt64) -> [UInt8] {
        var value = magic
        value.reserveCapacity(headerBytes + state.count)
        value.append(format)
        withUnsafeBytes(of: epoch.bigEndian) { value.append(contentsOf: $0) }
        withUnsafeBytes(of: incarnation.bigEndian) { value.append(contentsOf: $0) }
        value.append(contentsOf: state)
        return value
    }

    /// The epoch, incarnation and snapshot of a stored value: format 1 has incarnation 0;
    /// a value without an envelope is all snapshot, with epoch and incarnation 0.
    public static func decode(_ value: [UInt8]) -> (epoch: UInt64, incarnation: UInt64, state: [UInt8]) {
        func number(_ at: Int) -> UInt64 { value[at..<at + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        guard value.count > magic.count, value[0..<magic.count].elementsEqual(magic) else { return (0, 0, value) }
        switch value[magic.count] {
        case 1 where value.count >= formatOneHeaderBytes:
            return (number(4), 0, Array(value[formatOneHeaderBytes...]))
        case format where value.count >= headerBytes:
            return (number(4), number(12), Array(value[headerBytes...]))
        default:
            return (0, 0, value)
        }
    }
}
