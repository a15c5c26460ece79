import Dispatch
import Foundation
import MeshCore
import MeshProto
import Nats
import Synchronization

/// What a put did.
enum PutOutcome: Sendable, Equatable {
    case created, updated
    /// The stored spec equals the new one: nothing written, no event.
    case unchanged
}

/// The registry's writes to KV `mesh_agents` (the system of record), each a
/// compare-and-set on the key's revision. Blocking calls (each KV operation is a short
/// request to the server, ≈ 0.1 ms locally): run them on a NATS delivery thread or
/// another thread that may block, never on the cooperative pool. Creates and deletes also
/// go without blocking: ``createAsync(_:now:fallback:completion:)`` and
/// ``deleteAsync(_:known:expectedRevision:fallback:completion:)``.
struct RegistryWriter: Sendable {
    let agents: KeyValue
    let status: KeyValue
    /// A JetStream context of its own: the asynchronous creates' and deletes'
    /// acknowledgements arrive on its reply thread, so a completion that publishes an event through another
    /// context never waits for room in the window it is itself draining.
    let jetStream: JetStream
    /// Attempts of an upsert/update without an expected revision that keeps losing races.
    static let maxAttempts = 5

    /// Creates, updates or upserts `spec` (already validated).
    /// - Returns: the stored record (revision set) and what happened.
    /// - Throws: ``MeshError`` `already_exists`, `not_found`, `conflict`, `invalid_argument`, `unavailable`.
    func put(_ spec: AgentSpec, mode: PutMode, expectedRevision: UInt64, now: Int64) throws(MeshError) -> (AgentRecord, PutOutcome) {
        var spec = spec
        spec.version = SchemaVersion.current
        switch mode {
        case .create:
            guard expectedRevision == 0 else {
                throw MeshError(.invalidArgument, "expected_revision cannot be used with create (the agent must not exist)")
            }
            return (try create(spec, now: now), .created)
        case .update, .upsert:
            break
        case .unrecognized(let value):
            throw MeshError(.invalidArgument, "unknown put mode \(value): create, update or upsert")
        }
        for _ in 0..<Self.maxAttempts {
            let found = try kv("reading the agent", { () throws(NatsError) in try agents.get(spec.id) })
            guard let entry = found else {
                if mode == .update { throw MeshError(.notFound, "agent \(spec.id) does not exist") }
                if expectedRevision > 0 {
                    throw MeshError(.conflict, "agent \(spec.id) does not exist at revision \(expectedRevision)")
                }
                do { return (try create(spec, now: now), .created) } catch {
                    if error.code == .alreadyExists { continue }  // created concurrently: read it again
                    throw error
                }
            }
            if expectedRevision > 0 && entry.revision != expectedRevision {
                throw MeshError(.conflict, "agent \(spec.id) is at revision \(entry.revision), not \(expectedRevision)")
            }
            var current = (try? AgentRecord(serializedBytes: entry.value)) ?? AgentRecord()
            current.revision = entry.revision
            if Self.sameSpec(current.spec, spec) { return (current, .unchanged) }
            var record = AgentRecord(spec: spec, createdAtUnixMs: current.createdAtUnixMs == 0 ? now : current.createdAtUnixMs, updatedAtUnixMs: now)
            record.spec.generation = current.spec.generation + 1
            record.spec.incarnation = current.incarnation(storedAt: entry.revision)
            do throws(NatsError) {
                record.revision = try agents.update(spec.id, record.serializedBytes(), expectedRevision: entry.revision)
                return (record, .updated)
            } catch {
                guard error.code == .wrongLastRevision else { throw Self.unavailable("writing the agent", error) }
                if expectedRevision > 0 {
                    throw MeshError(.conflict, "agent \(spec.id) changed concurrently; it is no longer at revision \(expectedRevision)")
                }
            }
        }
        throw MeshError(.conflict, "agent \(spec.id) kept changing concurrently; retry", retryAfter: .milliseconds(50))
    }

    /// Deletes the agent (its `mesh_agents` key, with a revision check, and its status key).
    /// - Returns: the record as it was deleted.
    /// - Throws: ``MeshError`` `not_found`, `conflict`, `unavailable`.
    func delete(_ id: AgentID, expectedRevision: UInt64) throws(MeshError) -> AgentRecord {
        let found = try kv("reading the agent", { () throws(NatsError) in try agents.get(id.rawValue) })
        guard let entry = found else {
            throw MeshError(.notFound, "agent \(id) does not exist")
        }
        if expectedRevision > 0 && entry.revision != expectedRevision {
            throw MeshError(.conflict, "agent \(id) is at revision \(entry.revision), not \(expectedRevision)")
        }
        var record = (try? AgentRecord(serializedBytes: entry.value)) ?? AgentRecord(spec: AgentSpec(id: id.rawValue))
        record.revision = entry.revision
        try casDelete(id, revision: entry.revision)
        if (try? status.get(id.rawValue)) != nil {
            try kv("removing the agent's status") { () throws(NatsError) in try status.delete(id.rawValue) }
        }
        return record
    }

    private func create(_ spec: AgentSpec, now: Int64) throws(MeshError) -> AgentRecord {
        var record = Self.newRecord(spec, now: now)
        do throws(NatsError) {
            record.revision = try agents.create(spec.id, record.serializedBytes())
            return record
        } catch {
            if error.code == .keyExists { throw MeshError(.alreadyExists, "agent \(spec.id) exists already") }
            throw Self.unavailable("creating the agent", error)
        }
    }

    /// Creates `spec` (already validated) without waiting for JetStream
    /// (``KeyValue/createAsync(_:_:via:completion:)`` on the writer's context: stored only
    /// when the key has no history), and `completion` runs on a cnats thread
    /// with the stored record (its revision is the ack's sequence). A key with history is
    /// either a live agent (`already_exists`) or a deleted one's marker; that case is
    /// decided by the blocking ``put(_:mode:expectedRevision:now:)`` on `fallback`, as
    /// `kvStore_Create` does. At most the context's window of creates is in flight; beyond
    /// it the call waits up to 200 ms, then completes with `unavailable`.
    func createAsync(
        _ spec: AgentSpec, now: Int64, fallback: DispatchQueue, completion: @escaping @Sendable (Result<AgentRecord, MeshError>) -> Void
    ) {
        let record = Self.newRecord(spec, now: now)
        do throws(NatsError) {
            try agents.createAsync(spec.id, record.serializedBytes(), via: jetStream) { [self, record] result in
                switch result {
                case .success(let ack):
                    var stored = record
                    stored.revision = ack.sequence
                    completion(.success(stored))
                case .failure(let error) where error.code == .wrongLastRevision:
                    fallback.async {
                        completion(Result { () throws(MeshError) in try self.put(spec, mode: .create, expectedRevision: 0, now: now).0 })
                    }
                case .failure(let error):
                    completion(.failure(Self.unavailable("creating the agent", error)))
                }
            }
        } catch {
            completion(.failure(Self.unavailable("creating the agent", error)))
        }
    }

    /// Deletes the agent without waiting for JetStream when `known` (the directory's copy)
    /// is its current record: a delete marker at `known.revision` (compare-and-set), then the
    /// status key's marker, and `completion` runs on a cnats thread with `known`. When the
    /// directory has no copy, the copy is not at `expectedRevision`, or the key moved on
    /// meanwhile, the blocking ``delete(_:expectedRevision:)`` on `fallback` decides from KV
    /// itself (`not_found`, `conflict`, or the delete).
    func deleteAsync(
        _ id: AgentID, known: AgentRecord?, expectedRevision: UInt64, fallback: DispatchQueue,
        completion: @escaping @Sendable (Result<AgentRecord, MeshError>) -> Void
    ) {
        let decideFromKV: @Sendable () -> Void = { [self] in
            fallback.async { completion(Result { () throws(MeshError) in try self.delete(id, expectedRevision: expectedRevision) }) }
        }
        guard let known, known.revision > 0, expectedRevision == 0 || known.revision == expectedRevision else { return decideFromKV() }
        casDeleteAsync(id, revision: known.revision) { [self] result in
            switch result {
            case .success:
                deleteStatus(id)
                completion(.success(known))
            case .failure(let error) where error.code == .conflict:
                decideFromKV()
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// Writes the status key's delete marker without waiting (a missing key gets a marker,
    /// which reads as no status) through the status bucket's context — never `jetStream`,
    /// whose reply thread runs this and would wait for room in its own window.
    private func deleteStatus(_ id: AgentID) {
        try? status.deleteAsync(id.rawValue)
    }

    /// Writes a delete marker for `id` only while the key is at `revision`
    /// (``KeyValue/deleteAsync(_:expectedRevision:via:completion:)`` on the writer's context).
    /// `completion` runs on a cnats thread; a key that moved on is `conflict`.
    private func casDeleteAsync(_ id: AgentID, revision: UInt64, completion: @escaping @Sendable (Result<Void, MeshError>) -> Void) {
        do throws(NatsError) {
            try agents.deleteAsync(id.rawValue, expectedRevision: revision, via: jetStream) { result in
                switch result {
                case .success: completion(.success(()))
                case .failure(let error) where error.code == .wrongLastRevision:
                    completion(.failure(MeshError(.conflict, "agent \(id) changed concurrently; read it again")))
                case .failure(let error):
                    completion(.failure(Self.unavailable("deleting the agent", error)))
                }
            }
        } catch {
            completion(.failure(Self.unavailable("deleting the agent", error)))
        }
    }

    /// ``casDeleteAsync(_:revision:completion:)``, waited for (at most 6 s).
    private func casDelete(_ id: AgentID, revision: UInt64) throws(MeshError) {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<Void, MeshError>?>(nil)
        casDeleteAsync(id, revision: revision) { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + .seconds(6)) == .success, let result = outcome.withLock({ $0 }) else {
            throw MeshError(.timeout, "deleting agent \(id): no acknowledgement from JetStream")
        }
        try result.get()
    }

    /// The record a create stores: generation 1, and no incarnation in the spec (the
    /// create's revision is it: `AgentRecord.incarnation(storedAt:)`).
    private static func newRecord(_ spec: AgentSpec, now: Int64) -> AgentRecord {
        var record = AgentRecord(spec: spec, createdAtUnixMs: now, updatedAtUnixMs: now)
        record.spec.version = SchemaVersion.current
        record.spec.generation = 1
        record.spec.incarnation = 0
        return record
    }

    /// Whether two specs are the same apart from the fields the registry owns (generation,
    /// incarnation, version).
    static func sameSpec(_ a: AgentSpec, _ b: AgentSpec) -> Bool {
        var a = a
        var b = b
        a.generation = 0
        b.generation = 0
        a.incarnation = 0
        b.incarnation = 0
        a.version = SchemaVersion.current
        b.version = SchemaVersion.current
        return a == b
    }

    private func kv<T>(_ what: String, _ body: () throws(NatsError) -> T) throws(MeshError) -> T {
        do { return try body() } catch { throw Self.unavailable(what, error) }
    }

    static func unavailable(_ what: String, _ error: NatsError) -> MeshError {
        if error.code == .timeout { return MeshError(.timeout, "\(what): JetStream did not answer in time") }
        return MeshError(.unavailable, "\(what): JetStream unavailable (\(error.code))", retryAfter: .milliseconds(500))
    }
}
