public import MeshCore
public import Nats

/// Agent state checkpoints in KV `mesh_state`, fenced by shard epoch.
///
/// Each value records the epoch of the shard owner that wrote it (an envelope of
/// ``headerBytes`` in front of the behaviour's snapshot). A write is a compare-and-set on
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
/// Values written before the envelope existed read as epoch 0 with all their bytes as the
/// state, and any owner replaces them.
///
/// ```swift
/// let stored = try checkpoints.read(agent)                          // state, epoch, revision
/// let outcome = try checkpoints.write(agent, state: bytes, epoch: 7, knownRevision: stored?.revision ?? 0)
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
        /// The key's revision.
        public var revision: UInt64

        public init(state: [UInt8], epoch: UInt64, revision: UInt64) {
            (self.state, self.epoch, self.revision) = (state, epoch, revision)
        }
    }

    /// What a write did.
    public enum WriteOutcome: Sendable, Equatable {
        /// Stored at this revision.
        case written(revision: UInt64)
        /// Not stored: the key holds a checkpoint of a newer owner, written at `epoch`.
        case fenced(epoch: UInt64)
    }

    /// Marks a value written with the envelope: "MSC" and format 1.
    static let magic: [UInt8] = [0x4D, 0x53, 0x43, 0x01]
    /// Envelope bytes before the snapshot: the magic and the epoch (8 bytes, big-endian).
    public static let headerBytes = 12
    /// Compare-and-set attempts of one write while other writers keep moving the key.
    static let attempts = 4

    /// The agent's checkpoint; nil when it has none (never written, or deleted).
    /// The corresponding C function is `kvStore_Get`.
    public func read(_ agent: AgentID) throws(NatsError) -> Stored? {
        guard let entry = try bucket.get(agent.rawValue) else { return nil }
        let (epoch, state) = Self.decode(entry.value)
        return Stored(state: state, epoch: epoch, revision: entry.revision)
    }

    /// The checkpoints of many agents, read together (``KeyValue/values(_:timeout:)``: one
    /// request per 256 agents); agents without one are absent.
    public func read(_ agents: [AgentID]) async throws(NatsError) -> [AgentID: Stored] {
        let entries = try await bucket.values(agents.map(\.rawValue))
        var stored: [AgentID: Stored] = [:]
        for agent in agents {
            guard let entry = entries[agent.rawValue] else { continue }
            let (epoch, state) = Self.decode(entry.value)
            stored[agent] = Stored(state: state, epoch: epoch, revision: entry.revision)
        }
        return stored
    }

    /// Writes the agent's checkpoint unless a newer owner has written one.
    /// - Parameters:
    ///   - epoch: the shard epoch this writer holds (or held, for a hand-over).
    ///   - knownRevision: the key's revision when this writer last read or wrote it (0: it
    ///     had no checkpoint); nil when unknown, which costs a read first.
    /// - Throws: `NatsError` when NATS fails, or when other writers moved the key on every
    ///   attempt.
    /// The corresponding C functions are `kvStore_Update`, `kvStore_Create` and `kvStore_Get`.
    public func write(_ agent: AgentID, state: [UInt8], epoch: UInt64, knownRevision: UInt64?) throws(NatsError) -> WriteOutcome {
        let (key, value) = (agent.rawValue, Self.encode(state, epoch: epoch))
        var expected = knownRevision
        var lastError = NatsError(code: .wrongLastRevision, operation: "kvStore_Update")
        for _ in 0..<Self.attempts {
            if expected == nil {
                guard let stored = try read(agent) else {
                    expected = 0
                    continue
                }
                if stored.epoch > epoch { return .fenced(epoch: stored.epoch) }
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

    /// The stored form of a checkpoint.
    public static func encode(_ state: [UInt8], epoch: UInt64) -> [UInt8] {
        var value = magic
        value.reserveCapacity(headerBytes + state.count)
        withUnsafeBytes(of: epoch.bigEndian) { value.append(contentsOf: $0) }
        value.append(contentsOf: state)
        return value
    }

    /// The epoch and snapshot of a stored value (epoch 0 and the whole value when it has no
    /// envelope).
    public static func decode(_ value: [UInt8]) -> (epoch: UInt64, state: [UInt8]) {
        guard value.count >= headerBytes, value[0..<magic.count].elementsEqual(magic) else { return (0, value) }
        let epoch = value[magic.count..<headerBytes].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (epoch, Array(value[headerBytes...]))
    }
}
