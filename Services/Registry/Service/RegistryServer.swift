import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Metrics
import Nats
import NatsMicro
import ServiceLifecycle
import Synchronization

/// Serves the registry verbs from the in-memory ``AgentDirectory``:
///
/// | subject | request → reply | served on |
/// |---|---|---|
/// | `<prefix>.reg.*.get` | `GetAgentRequest` → `AgentReply` | the NATS delivery thread, from memory |
/// | `<prefix>.reg.list` | `ListAgentsRequest` → `ListAgentsReply` | the NATS delivery thread, from memory |
/// | `<prefix>.reg.*.put` | `PutAgentRequest` → `AgentReply` | `writers` delivery threads: creates asynchronously (answered when JetStream acknowledges), updates with blocking KV CAS writes |
/// | `<prefix>.reg.*.delete` | `DeleteAgentRequest` → `AgentReply` | the same threads: a compare-and-set delete at the directory's revision, answered when JetStream acknowledges (KV decides when the directory cannot) |
///
/// All in queue group `registry`, so instances share the load. Nothing is subscribed
/// before both KV watches (`mesh_agents`, `mesh_status`) have delivered their initial
/// values: a new instance catches up before it answers. Any instance answers every shard
/// (the shard token lets a deployment route shards to instances later).
///
/// Every reply is protobuf with the `Mesh-Type` header. A bad request — bytes that are
/// not the expected message, a wrong `Mesh-Type`, an invalid id, an unknown kind, an
/// oversized config — is answered with an `ErrorReply` (`invalid_argument`, `invalid_id`,
/// `too_large`, …) and counted; the service goes on. A writer applies its own write to
/// its directory at once, so a client that wrote through an instance reads its write
/// there; other instances see it when their watch delivers it (typically < 1 ms).
final class RegistryServer: Service, Sendable {
    /// Largest request accepted, in bytes (a spec with a 64 KiB config and 64 labels is
    /// far below it).
    static let maxRequestBytes = 256 * 1024
    /// Default and largest page of a list.
    static let defaultLimit = 100
    static let maxLimit = 1_000

    let context: ServiceContext
    let directory: AgentDirectory
    let writer: RegistryWriter
    let rules: AgentSpecRules
    let events: EventPublisher
    let writers: Int
    /// Where creates and deletes the directory cannot decide are decided from KV (blocking reads).
    private let fallback = DispatchQueue(label: "mesh.registry.kv-fallback")
    private let subscriptions = Mutex<[NatsHandlerSubscription]>([])
    private let metrics = RegistryMetrics()

    init(context: ServiceContext, directory: AgentDirectory, writer: RegistryWriter, rules: AgentSpecRules, events: EventPublisher, writers: Int) {
        self.context = context
        self.directory = directory
        self.writer = writer
        self.rules = rules
        self.events = events
        self.writers = writers
    }

    func run() async throws {
        let logger = context.logger
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.directory.run() }
            await withGracefulShutdownHandler {
                let start = ContinuousClock.now
                await self.directory.waitUntilLoaded()
                guard !Task.isShuttingDownGracefully, self.directory.isLoaded else { return }
                do {
                    try self.subscribe()
                } catch {
                    logger.error("cannot subscribe the registry endpoints", metadata: ["error": "\(error)"])
                    return
                }
                let revisions = self.directory.revisions
                logger.info(
                    "registry serving",
                    metadata: [
                        "mesh.agents": "\(self.directory.count)", "mesh.kv.agents.revision": "\(revisions.agents)",
                        "mesh.kv.status.revision": "\(revisions.status)",
                        "mesh.catchup.ms": "\((ContinuousClock.now - start).components.seconds * 1000 + (ContinuousClock.now - start).components.attoseconds / 1_000_000_000_000_000)",
                    ])
                try? await gracefulShutdown()
            } onGracefulShutdown: {
                self.directory.stop()
            }
            self.unsubscribe()
            self.directory.stop()
        }
    }

    // MARK: Subscriptions

    private func subscribe() throws {
        let subjects = context.subjects
        let queue = subjects.registryQueue
        let micro = context.micro
        let get = micro.registerEndpoint(name: "get", subject: subjects.registryWildcard(verb: .get), queueGroup: queue)
        let list = micro.registerEndpoint(name: "list", subject: subjects.registry(verb: .list), queueGroup: queue)
        let put = micro.registerEndpoint(name: "put", subject: subjects.registryWildcard(verb: .put), queueGroup: queue)
        let delete = micro.registerEndpoint(name: "delete", subject: subjects.registryWildcard(verb: .delete), queueGroup: queue)
        var subscribed: [NatsHandlerSubscription] = []
        do {
            subscribed.append(try serve(get, .get))
            subscribed.append(try serve(list, .list))
            // Writes block their delivery thread on KV round trips: several subscriptions in
            // the same queue group give several threads.
            for _ in 0..<writers {
                subscribed.append(try serve(put, .put))
                subscribed.append(try serve(delete, .delete))
            }
            try context.nats.flush(timeout: .seconds(5))
        } catch {
            subscribed.forEach { try? $0.unsubscribe() }
            throw error
        }
        subscriptions.withLock { $0 = subscribed }
    }

    private func unsubscribe() {
        let all = subscriptions.withLock { current -> [NatsHandlerSubscription] in
            defer { current = [] }
            return current
        }
        all.forEach { try? $0.unsubscribe() }
    }

    private func serve(_ endpoint: MicroEndpoint, _ verb: RegistryVerb) throws(NatsError) -> NatsHandlerSubscription {
        try context.nats.subscribe(endpoint.subject, queue: endpoint.queueGroup, maxPendingMessages: 65_536, maxPendingBytes: 64 << 20) {
            [self] message in
            let start = ContinuousClock.now
            let finish: @Sendable (Answer) -> Void = { [self] answer in
                var headers = NatsHeaders()
                headers[MeshHeader.messageType] = answer.type.rawValue
                if message.reply != nil {
                    do { try self.context.nats.respond(to: message, payload: answer.payload, headers: headers) } catch {
                        self.context.logger.debug("registry reply failed", metadata: ["mesh.registry.verb": "\(verb.rawValue)", "error": "\(error)"])
                    }
                }
                let elapsed = ContinuousClock.now - start
                endpoint.record(processingTime: elapsed, error: answer.error.map { "\($0.code.rawValue): \($0.message)" })
                self.metrics.record(verb, elapsed, error: answer.error)
            }
            switch verb {
            case .put: self.put(message, then: finish)
            case .delete: self.delete(message, then: finish)
            default: finish(self.handle(verb, message))
            }
        }
    }

    // MARK: Handlers

    /// A reply's bytes and type, and the error it carries (if any).
    typealias Answer = (payload: [UInt8], type: MessageType, error: MeshError?)

    /// Answers a get or list request (puts and deletes go through ``put(_:then:)`` and
    /// ``delete(_:then:)``).
    func handle(_ verb: RegistryVerb, _ message: NatsMessage) -> Answer {
        switch verb {
        case .list:
            switch listReply(message) {
            case .success(let reply): return (reply.serializedBytes(), ListAgentsReply.messageType, nil)
            case .failure(let error):
                return (ListAgentsReply(error: error.errorReply).serializedBytes(), ListAgentsReply.messageType, error)
            }
        default: return Self.answer(Result { () throws(MeshError) in try self.get(message) })
        }
    }

    static func answer(_ result: Result<AgentRecord, MeshError>) -> Answer {
        switch result {
        case .success(let record): (AgentReply(record: record).serializedBytes(), AgentReply.messageType, nil)
        case .failure(let error): (AgentReply(error: error.errorReply).serializedBytes(), AgentReply.messageType, error)
        }
    }

    private func get(_ message: NatsMessage) throws(MeshError) -> AgentRecord {
        let request: GetAgentRequest = try Self.decode(message)
        let id = try AgentID(request.agentId)
        guard let record = directory.record(id) else { throw MeshError(.notFound, "agent \(id) does not exist") }
        return record
    }

    /// Answers a put. A plain create (the hot path) goes to KV without blocking this
    /// delivery thread and is answered from the acknowledgement's thread; updates and
    /// upserts (read, compare, write) block it.
    private func put(_ message: NatsMessage, then finish: @escaping @Sendable (Answer) -> Void) {
        let request: PutAgentRequest
        do throws(MeshError) {
            request = try Self.decode(message)
            try rules.validate(request.spec)
        } catch {
            return finish(Self.answer(.failure(error)))
        }
        guard request.mode == .create, request.expectedRevision == 0 else {
            return finish(Self.answer(Result { () throws(MeshError) in
                try self.apply(request.spec, mode: request.mode, expectedRevision: request.expectedRevision, source: "request")
            }))
        }
        writer.createAsync(request.spec, now: Self.nowMs(), fallback: fallback) { [self] result in
            finish(Self.answer(result.flatMap { stored in Result { () throws(MeshError) in try self.recorded(stored, .created, source: "request") } }))
        }
    }

    /// Writes a validated spec, updates the local directory and emits the event.
    func apply(_ spec: AgentSpec, mode: PutMode, expectedRevision: UInt64, source: String) throws(MeshError) -> AgentRecord {
        let (stored, outcome) = try writer.put(spec, mode: mode, expectedRevision: expectedRevision, now: Self.nowMs())
        return try recorded(stored, outcome, source: source)
    }

    /// Applies a stored write to the local directory and emits its event.
    /// - Returns: the record as the directory has it (with its status merged).
    private func recorded(_ stored: AgentRecord, _ outcome: PutOutcome, source: String) throws(MeshError) -> AgentRecord {
        let id = try AgentID(stored.spec.id)
        let attributes = [
            "kind": stored.spec.kind, "generation": String(stored.spec.generation), "revision": String(stored.revision),
        ]
        switch outcome {
        case .created:
            directory.applyLocal(stored)
            events.publish(.agentCreated, agent: id, reason: "created by \(source)", attributes: attributes)
        case .updated:
            directory.applyLocal(stored)
            events.publish(.agentUpdated, agent: id, reason: "spec changed by \(source) (generation \(stored.spec.generation))", attributes: attributes)
        case .unchanged:
            break
        }
        return directory.record(id) ?? stored
    }

    private static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Answers a delete: from the directory's copy without blocking this delivery thread
    /// (answered when JetStream acknowledges), or from KV when the copy cannot decide.
    private func delete(_ message: NatsMessage, then finish: @escaping @Sendable (Answer) -> Void) {
        let request: DeleteAgentRequest
        let id: AgentID
        do throws(MeshError) {
            request = try Self.decode(message)
            id = try AgentID(request.agentId)
        } catch {
            return finish(Self.answer(.failure(error)))
        }
        writer.deleteAsync(id, known: directory.record(id), expectedRevision: request.expectedRevision, fallback: fallback) { [self] result in
            if case .success(let record) = result {
                directory.removeLocal(id: id.rawValue, revision: record.revision)
                events.publish(
                    .agentDeleted, agent: id, reason: "deleted by request",
                    attributes: ["kind": record.spec.kind, "generation": String(record.spec.generation), "revision": String(record.revision)])
            }
            finish(Self.answer(result))
        }
    }

    private func listReply(_ message: NatsMessage) -> Result<ListAgentsReply, MeshError> {
        Result { () throws(MeshError) in
            let request: ListAgentsRequest = try Self.decode(message)
            let selector = try LabelSelector(request.selector)
            let limit = request.limit == 0 ? Self.defaultLimit : Int(request.limit)
            guard limit <= Self.maxLimit else { throw MeshError(.invalidArgument, "limit must be at most \(Self.maxLimit), got \(limit)") }
            if !request.nodeId.isEmpty { _ = try NodeID(request.nodeId) }
            if !request.cursor.isEmpty, !Identifier.isValid(request.cursor) {
                throw MeshError(.invalidArgument, "cursor must be an agent id from a previous page")
            }
            let status: AgentStatus?
            switch request.status {
            case .unspecified: status = nil
            case .unrecognized(let value): throw MeshError(.invalidArgument, "unknown status \(value)")
            default: status = request.status
            }
            // Replies stay under the server's max payload whatever the configs' sizes.
            let budget = max(64 * 1024, context.nats.maxPayload - 64 * 1024)
            let page = directory.list(
                selector: selector, node: request.nodeId.isEmpty ? nil : request.nodeId, status: status, cursor: request.cursor,
                limit: limit, maxBytes: budget)
            return ListAgentsReply(records: page.records, nextCursor: page.nextCursor ?? "")
        }
    }

    /// Decodes a request after checking its size and `Mesh-Type` header (when present).
    static func decode<M: MeshMessage>(_ message: NatsMessage) throws(MeshError) -> M {
        guard message.payload.count <= maxRequestBytes else {
            throw MeshError(.tooLarge, "request is \(message.payload.count) bytes; at most \(maxRequestBytes) allowed")
        }
        if let type = message.headers[MeshHeader.messageType], type != M.messageType.rawValue {
            throw MeshError(.invalidArgument, "expected a \(M.messageType) request, the Mesh-Type header says \(AgentSpecRules.quoted(type))")
        }
        do {
            return try M(serializedBytes: message.payload, limits: WireLimits(maxMessageBytes: maxRequestBytes))
        } catch {
            if error.code == .tooLarge { throw MeshError(.tooLarge, "request too large") }
            throw MeshError(.invalidArgument, "malformed request: not a valid \(M.messageType) (\(error.code))")
        }
    }
}

extension AgentSpecRules {
    /// `text` quoted and cut to 80 characters, for error messages.
    static func quoted(_ text: String) -> String {
        String(reflecting: text.count > 80 ? String(text.prefix(80)) + "…" : text)
    }
}

/// The registry's metrics, created once: requests and errors per verb, latency per verb.
final class RegistryMetrics: Sendable {
    private let requests: [RegistryVerb: Counter]
    private let errors: [RegistryVerb: Counter]
    private let latency: [RegistryVerb: Metrics.Timer]

    init() {
        var requests: [RegistryVerb: Counter] = [:]
        var errors: [RegistryVerb: Counter] = [:]
        var latency: [RegistryVerb: Metrics.Timer] = [:]
        for verb in [RegistryVerb.get, .list, .put, .delete] {
            requests[verb] = Counter(label: "mesh_registry_requests_total", dimensions: [("verb", verb.rawValue)])
            errors[verb] = Counter(label: "mesh_registry_errors_total", dimensions: [("verb", verb.rawValue)])
            latency[verb] = Metrics.Timer(label: "mesh_registry_request_duration_seconds", dimensions: [("verb", verb.rawValue)])
        }
        self.requests = requests
        self.errors = errors
        self.latency = latency
    }

    func record(_ verb: RegistryVerb, _ elapsed: Duration, error: MeshError?) {
        requests[verb]?.increment()
        if error != nil { errors[verb]?.increment() }
        latency[verb]?.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
