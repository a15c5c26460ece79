import ArgumentParser
import Foundation
import Logging
import MeshBench
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Nats
import Synchronization

/// The scenarios of `meshctl bench`.
enum BenchScenario: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// Action round trips (request/reply through a worker) on echo agents.
    case actions
    /// Agent creation through the registry (`agent-create`: the create call), and until the
    /// agents answer on their workers (`agent-create/running`). Each created agent is
    /// deleted afterwards.
    case agentCreate = "agent-create"
    /// Create → first action answered → delete, per operation.
    case lifecycle
    /// Registry get over NATS (`registry-lookup/nats`) and from the client-side directory
    /// fed by the KV watch (`registry-lookup/cache`).
    case registryLookup = "registry-lookup"
    /// One event published to 1 / 100 / 1 000 subscribers (`events/<n>`): an operation ends
    /// when every subscriber has it.
    case events
    /// Durable tasks: submit → executed (its `task.succeeded` event seen).
    case tasks
    /// The gateway over HTTP: `gateway-http/health` and `gateway-http/action` (an echo action).
    case gatewayHTTP = "gateway-http"
    /// Plain cnats with no mesh in the path, against the same server: request/reply with
    /// many and with 1 in flight, publish/subscribe, JetStream publish → consume + ack.
    case natsRaw = "nats-raw"
    /// SIGKILL a worker of a mesh of its own: time until its agents answer again.
    case failover

    /// The profile a scenario runs with when none is given.
    var defaultProfile: LoadProfile {
        switch self {
        case .actions: .max(inFlight: 256)
        // 64 in flight measured latency, not capacity: 3 600-4 300 creates/s with the mesh
        // below its CPU, 5 300-5 700/s with 256 (alternating runs).
        case .agentCreate: .max(inFlight: 256)
        case .lifecycle: .max(inFlight: 16)
        case .registryLookup: .max(inFlight: 1)
        case .events: .max(inFlight: 64)
        case .tasks: .max(inFlight: 512)
        case .gatewayHTTP: .max(inFlight: 64)
        case .natsRaw, .failover: .max(inFlight: 256)
        }
    }

    /// Whether the scenario is driven by the load generator (raw and failover are not:
    /// they are fixed-size reference measurements).
    var takesProfile: Bool { self != .natsRaw && self != .failover }
}

/// Scenario settings shared by `bench run`, `bench all` and `bench compare --runs`.
struct ScenarioSettings: Sendable {
    var duration: Double = 10
    var warmup: Double = 2
    /// Overrides each scenario's default profile.
    var profile: LoadProfile?
    /// Overrides the result name (single scenario runs only).
    var name: String?
    var agents = 200
    var payloadBytes = 128
    var subscribers = [1, 100, 1_000]
    var httpConnections = 64
    var failoverRuns = 3
    var failoverAgents = 300
    var run = 1
}

/// What the scenarios talk to: one NATS connection and the mesh clients over it, the
/// gateway, and the mesh's processes (for CPU/RSS).
final class BenchSession: Sendable {
    let nats: NatsConnection
    let natsURL: String
    let subjects: Subjects
    let shardMap: ShardMap
    let registry: RegistryClient
    let actions: ActionClient
    let gatewayURL: String?
    let apiKey: String?
    let processes: [MeshProcess]

    init(natsURL: String, prefix: String, gatewayURL: String?, apiKey: String?, processes: [MeshProcess]) async throws {
        let (nats, subjects, shardMap) = try await MeshConnectionOptions.connect(natsURL, prefix: prefix)
        self.nats = nats
        self.natsURL = natsURL
        self.subjects = subjects
        self.shardMap = shardMap
        registry = RegistryClient(connection: nats, subjects: subjects, shardMap: shardMap)
        actions = try await ActionClient.watchingShards(connection: nats, subjects: subjects, shardMap: shardMap)
        self.gatewayURL = gatewayURL
        self.apiKey = apiKey
        self.processes = processes
    }

    func close() {
        actions.stop()
        nats.close()
    }

    // MARK: Helpers

    /// Creates echo agents `<prefix>-<tag>-<n>` (a fresh random tag per call, so a run never
    /// re-creates ids an earlier run deleted moments ago) and waits until each answers.
    func echoAgents(prefix: String, count: Int, mailbox: UInt32 = 0) async throws -> [AgentID] {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let ids = try (0..<count).map { try AgentID("\(prefix)-\(tag)-\($0)") }
        let registry = self.registry
        let actions = self.actions
        try await Self.concurrently(count: count, inFlight: 32) { index in
            _ = try await registry.upsert(AgentSpec(id: ids[index].rawValue, kind: "echo", labels: ["bench": prefix], mailboxCapacity: mailbox))
        }
        try await Self.concurrently(count: count, inFlight: 32) { index in try await actions.waitUntilAnswering(ids[index]) }
        return ids
    }

    /// Deletes agents, ignoring those already gone.
    func deleteAgents(_ ids: [AgentID]) async {
        let registry = self.registry
        try? await Self.concurrently(count: ids.count, inFlight: 32) { index in _ = try? await registry.delete(ids[index]) }
    }

    /// Runs `body(0..<count)` with `inFlight` at a time.
    static func concurrently(count: Int, inFlight: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                if index >= inFlight { try await group.next() }
                group.addTask { try await body(index) }
            }
            try await group.waitForAll()
        }
    }
}

extension ActionClient {
    /// Waits until `agent` answers a ping (placed and started), for at most `timeout`.
    func waitUntilAnswering(_ agent: AgentID, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                _ = try await act(agent, action: "ping", timeout: .seconds(10))
                return
            } catch {
                guard error.code == .notFound, ContinuousClock.now < deadline else { throw error }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Runs scenarios and turns their measurements into results.
struct ScenarioRunner {
    var session: BenchSession
    var settings: ScenarioSettings

    private func generator(_ name: String, _ profile: LoadProfile) -> LoadGenerator {
        LoadGenerator(label: name, profile: profile, warmup: settings.warmup, duration: settings.duration, processes: session.processes)
    }

    private func progress(_ text: String) { FileHandle.standardError.write(Data("bench: \(text)\n".utf8)) }

    /// Runs one scenario; the results of its variants.
    func run(_ scenario: BenchScenario) async throws -> [BenchResult] {
        let profile = settings.profile ?? scenario.defaultProfile
        let name = settings.name ?? scenario.rawValue
        switch scenario {
        case .actions: return [try await actions(name: name, profile: profile)]
        case .agentCreate: return try await agentCreate(name: name, profile: profile)
        case .lifecycle: return [try await lifecycle(name: name, profile: profile)]
        case .registryLookup: return try await registryLookup(name: name, profile: profile)
        case .events: return try await events(name: name, profile: profile)
        case .tasks: return try await tasks(name: name, profile: profile)
        case .gatewayHTTP: return try await gatewayHTTP(name: name, profile: profile)
        case .natsRaw: return try await natsRaw(name: name)
        case .failover: return [try await failover(name: name)]
        }
    }

    /// Runs `body` every `interval` until the task is cancelled (timeouts of pending waits).
    static func repeating(every interval: Duration, _ body: @escaping @Sendable () -> Void) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                body()
            }
        }
    }

    private var common: [String: String] {
        ["warmupSeconds": String(settings.warmup), "durationSeconds": String(settings.duration), "payloadBytes": String(settings.payloadBytes)]
    }

    // MARK: Actions, agents, lifecycle

    func actions(name: String, profile: LoadProfile) async throws -> BenchResult {
        progress("\(name): creating \(settings.agents) echo agents")
        let ids = try await session.echoAgents(prefix: "bench-act", count: settings.agents, mailbox: 10_000)
        let actions = session.actions
        let payload = [UInt8](repeating: 0x41, count: settings.payloadBytes)
        // The callback form of ActionClient.act (as the gateway calls it): the reference,
        // raw cnats request/reply, also sends each request from the previous reply's callback.
        let measurement = await generator(name, profile).run { index, done in
            actions.act(ids[index % ids.count], action: "echo", payload: payload, timeout: .seconds(5)) { result in
                if case .failure(let error) = result { done(error) } else { done(nil) }
            }
        }
        await session.deleteAgents(ids)
        return measurement.result(
            name: name, scenario: BenchScenario.actions.rawValue, run: settings.run, parameters: common.merging(["agents": String(ids.count)]) { a, _ in a },
            profile: profile, notes: ["latency: action request → reply through the owning worker (ActionClient, callback form)"])
    }

    /// Creates agents as fast as the profile allows. Two results:
    /// - `agent-create`: the create call (KV compare-and-set, index, reply) in the window;
    /// - `agent-create/running`: the same agents until their workers report them running
    ///   (their `mesh_status` record, written once the agent answers, seen through a KV
    ///   watch). Throughput: every agent created (warm-up included) over the time from the
    ///   first create until the last one runs, so workers falling behind the registry lower
    ///   it. Latency: create sent → running, for every agent.
    func agentCreate(name: String, profile: LoadProfile) async throws -> [BenchResult] {
        let registry = session.registry
        let tag = "bench-new-\(UInt16.random(in: 0...UInt16.max))"
        let track = CreateTracking(prefix: "\(tag)-")
        let statusWatch = try session.nats.jetStream().keyValue(session.subjects.statusBucket).watch(updatesOnly: true, bufferSize: 8_192)
        let watching = Task { for await event in statusWatch { if case .entry(let entry) = event { track.statusChanged(entry) } } }
        let begin = track.clock.now
        let measurement = await generator(name, profile).run { index in
            track.sending(index)
            do { _ = try await registry.create(AgentSpec(id: "\(tag)-\(index)", kind: "echo", labels: ["bench": "agent-create"])) } catch {
                track.failed(index)
                throw error
            }
        }
        let created = measurement.recorder.total  // indexes 0..<total were attempted
        progress("\(name): waiting until the \(created) agents run")
        let last = await track.waitUntilRunning(created, quietFor: .seconds(10))
        statusWatch.stop()
        await watching.value
        progress("\(name): deleting \(created) agents")
        await session.deleteAgents(try (0..<created).map { try AgentID("\(tag)-\($0)") })
        let accepted = measurement.result(
            name: name, scenario: BenchScenario.agentCreate.rawValue, run: settings.run, parameters: common, profile: profile,
            notes: ["latency: registry create (KV CAS write, index, reply); placement on a worker follows (agent-create/running)"])
        let (attempts, running, latencies) = track.outcome
        let placed = BenchResult(
            name: "\(name)/running", scenario: BenchScenario.agentCreate.rawValue, run: settings.run,
            parameters: common.merging(["agents": String(attempts)]) { a, _ in a },
            profile: profile.description, startedAt: measurement.startedAt, warmupSeconds: 0, durationSeconds: (last - begin).totalSeconds,
            operations: attempts, errors: attempts - running, histogram: latencies, timeline: [], resources: measurement.resources,
            notes: [
                "throughput: agents created (warm-up included) ÷ time from the first create until the last one runs",
                "latency: create sent → its worker's `running` status seen (KV watch of mesh_status)",
                "resources: the mesh's processes during the create window",
            ])
        return [accepted, placed]
    }

    /// What `agentCreate` notes while it runs: when each create was sent, which failed, and
    /// when each agent was first seen running.
    private final class CreateTracking: Sendable {
        let clock = ContinuousClock()
        let prefix: String
        private struct State {
            var sent: [Int: ContinuousClock.Instant] = [:]
            var failed = 0
            var running = 0
            var lastRunning: ContinuousClock.Instant?
            var latencies = LogLinearHistogram()
        }
        private let state = Mutex(State())

        init(prefix: String) { self.prefix = prefix }

        func sending(_ index: Int) {
            let now = clock.now
            state.withLock { $0.sent[index] = now }
        }

        func failed(_ index: Int) {
            state.withLock { state in
                if state.sent.removeValue(forKey: index) != nil { state.failed += 1 }
            }
        }

        /// A `mesh_status` change: the first `running` record of a created agent counts.
        func statusChanged(_ entry: KeyValueEntry) {
            guard entry.operation == .put, entry.key.hasPrefix(prefix), let index = Int(entry.key.dropFirst(prefix.count)),
                (try? AgentRecord(serializedBytes: entry.value))?.status == .running
            else { return }
            let now = clock.now
            state.withLock { state in
                guard let sent = state.sent.removeValue(forKey: index) else { return }  // seen before, or failed
                state.running += 1
                state.lastRunning = now
                state.latencies.record(UInt64((now - sent).totalNanoseconds))
            }
        }

        /// Waits until every created agent (of `created` attempted) runs, or until none has
        /// started for `quietFor`; the instant the last one was seen running.
        func waitUntilRunning(_ created: Int, quietFor: Duration) async -> ContinuousClock.Instant {
            var lastProgress = clock.now
            var seen = -1
            while true {
                let (running, failed, last) = state.withLock { ($0.running, $0.failed, $0.lastRunning) }
                if running + failed >= created { return last ?? clock.now }
                if running != seen { (seen, lastProgress) = (running, clock.now) }
                if clock.now - lastProgress > quietFor { return last ?? clock.now }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }

        /// Creates that succeeded, agents seen running, their latencies.
        var outcome: (created: Int, running: Int, latencies: LogLinearHistogram) {
            state.withLock { state in (state.running + state.sent.count, state.running, state.latencies) }
        }
    }

    func lifecycle(name: String, profile: LoadProfile) async throws -> BenchResult {
        let registry = session.registry
        let actions = session.actions
        let tag = "bench-cycle-\(UInt16.random(in: 0...UInt16.max))"
        let payload = [UInt8](repeating: 0x41, count: settings.payloadBytes)
        let measurement = await generator(name, profile).run { index in
            let id = try AgentID("\(tag)-\(index)")
            _ = try await registry.create(AgentSpec(id: id.rawValue, kind: "echo", labels: ["bench": "lifecycle"]))
            do {
                let deadline = ContinuousClock.now + .seconds(10)
                while true {
                    do {
                        _ = try await actions.act(id, action: "echo", payload: payload, timeout: .seconds(10))
                        break
                    } catch {
                        guard (error as? MeshError)?.code == .notFound, ContinuousClock.now < deadline else { throw error }
                    }
                    try await Task.sleep(for: .milliseconds(2))
                }
            } catch {
                _ = try? await registry.delete(id)
                throw error
            }
            _ = try await registry.delete(id)
        }
        return measurement.result(
            name: name, scenario: BenchScenario.lifecycle.rawValue, run: settings.run, parameters: common, profile: profile,
            notes: ["latency: create → placed and first action answered → deleted"])
    }

    // MARK: Registry lookups

    func registryLookup(name: String, profile: LoadProfile) async throws -> [BenchResult] {
        progress("\(name): creating \(settings.agents) agents")
        let ids = try await session.echoAgents(prefix: "bench-look", count: settings.agents)
        let registry = session.registry
        // As the raw cnats request/reply reference, each request goes from the previous reply's callback.
        let overNATS = await generator("\(name)/nats", profile).run { index, done in
            registry.get(ids[index % ids.count]) { result in
                if case .failure(let error) = result { done(error) } else { done(nil) }
            }
        }
        let js = try session.nats.jetStream()
        let directory = try AgentDirectory(
            agents: try js.keyValue(session.subjects.agentsBucket), status: try js.keyValue(session.subjects.statusBucket), logger: Logger(label: "meshctl"))
        let watch = Task { await directory.run() }
        await directory.waitUntilLoaded()
        let cached = await generator("\(name)/cache", profile).run { index in
            guard directory.record(ids[index % ids.count]) != nil else { throw MeshError(.notFound, "the directory misses \(ids[index % ids.count])") }
        }
        directory.stop()
        watch.cancel()
        await session.deleteAgents(ids)
        let parameters = common.merging(["agents": String(ids.count)]) { a, _ in a }
        return [
            overNATS.result(
                name: "\(name)/nats", scenario: BenchScenario.registryLookup.rawValue, run: settings.run, parameters: parameters, profile: profile,
                notes: ["latency: registry get request/reply over NATS (queue group registry; RegistryClient callback form)"]),
            cached.result(
                name: "\(name)/cache", scenario: BenchScenario.registryLookup.rawValue, run: settings.run, parameters: parameters, profile: profile,
                notes: ["latency: lookup in the client-side directory fed by the KV watch (no network)"]),
        ]
    }

    // MARK: Events

    func events(name: String, profile: LoadProfile) async throws -> [BenchResult] {
        var results: [BenchResult] = []
        for count in settings.subscribers {
            results.append(try await events(name: "\(name)/\(count)", subscribers: count, profile: profile))
        }
        return results
    }

    private func events(name: String, subscribers: Int, profile: LoadProfile) async throws -> BenchResult {
        let subject = session.subjects.benchEvents(UInt32.random(in: 0...UInt32.max))
        let tracker = FanoutTracker(subscribers: subscribers)
        // Subscribers on up to 4 connections, delivered by cnats' shared delivery threads.
        var connections: [NatsConnection] = []
        var subscriptions: [NatsHandlerSubscription] = []
        defer {
            for subscription in subscriptions { try? subscription.unsubscribe() }
            for connection in connections { connection.close() }
        }
        for index in 0..<min(subscribers, 4) {
            var options = NatsOptions()
            options.servers = [session.natsURL]
            options.name = "meshctl-bench-sub-\(index)"
            options.maxReconnect = 0
            options.useGlobalMessageDelivery = subscribers > 4
            connections.append(try await NatsConnection.connect(options, logger: Logger(label: "meshctl")))
        }
        for index in 0..<subscribers {
            subscriptions.append(
                try connections[index % connections.count].subscribe(subject, maxPendingMessages: 1_000_000, maxPendingBytes: 256 << 20) { message in
                    guard message.payload.count >= 8 else { return }
                    tracker.delivered(message.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                })
        }
        for connection in connections { try connection.flush(timeout: .seconds(5)) }
        let publisher = session.nats
        let sweeper = Self.repeating(every: .milliseconds(100)) { tracker.expire(olderThan: .seconds(5)) }
        defer { sweeper.cancel() }
        let payloadSize = max(8, settings.payloadBytes)
        let measurement = await generator(name, profile).run { index in
            var payload = [UInt8](repeating: 0x65, count: payloadSize)
            let sequence = UInt64(index)
            withUnsafeBytes(of: sequence) { payload.replaceSubrange(0..<8, with: $0) }
            let message = payload
            try await tracker.publishAndWait(sequence) { () throws(NatsError) in try publisher.publish(subject, payload: message) }
        }
        return measurement.result(
            name: name, scenario: BenchScenario.events.rawValue, run: settings.run,
            parameters: common.merging(["subscribers": String(subscribers), "subscriberConnections": String(connections.count)]) { a, _ in a },
            profile: profile,
            notes: [
                "an operation = one event published (core NATS, a mesh bench subject) and delivered to all \(subscribers) subscriber(s); deliveries/s = throughput × \(subscribers)",
                "latency: publish → the last subscriber has it",
            ])
    }

    // MARK: Tasks

    func tasks(name: String, profile: LoadProfile) async throws -> [BenchResult] {
        let agents = min(settings.agents, 200)
        progress("\(name): creating \(agents) echo agents")
        let ids = try await session.echoAgents(prefix: "bench-task", count: agents, mailbox: 10_000)
        let client = try TaskClient(connection: session.nats, subjects: session.subjects, shardMap: session.shardMap)
        let tracker = TaskCompletions()
        let events = try session.nats.subscribe(session.subjects.event(.taskSucceeded), maxPendingMessages: 1_000_000, maxPendingBytes: 1 << 30) { message in
            // The task id is an attribute: the record in the payload need not be decoded.
            guard let event = try? Event(serializedBytes: message.payload), event.domain == "task", event.agentId.hasPrefix("bench-task-"),
                let taskId = event.attributes["task"]
            else { return }
            tracker.succeeded(taskId)
        }
        defer { try? events.unsubscribe() }
        try session.nats.flush(timeout: .seconds(5))
        let sweeper = Self.repeating(every: .milliseconds(250)) { tracker.expire(olderThan: .seconds(60)) }
        defer { sweeper.cancel() }
        let payload = [UInt8](repeating: 0x41, count: settings.payloadBytes)
        let since = Date().addingTimeInterval(-1)
        let measurement = await generator(name, profile).run { index, done in
            client.submit(TaskSubmission(agent: ids[index % ids.count], action: "echo", payload: payload)) { result in
                switch result {
                case .success(let submitted): tracker.wait(submitted.taskId, then: done)
                case .failure(let error): done(error)
                }
            }
        }
        // The history (PostgreSQL, written off the hot path) must catch up with every task:
        // caught up when the registry's history consumer has nothing left to write (a cheap
        // probe, timed); then one count of the succeeded tasks checks nothing is missing.
        let succeeded = measurement.recorder.total - measurement.recorder.totalErrors
        var notes = ["latency: submit (JetStream; TaskClient, callback form) → executed by the worker → its task.succeeded event seen"]
        let clock = ContinuousClock()
        let waitStart = clock.now
        let js = try session.nats.jetStream()
        let (stream, consumer) = (session.subjects.eventsStream, session.subjects.registryTasksConsumer)
        var drained = false
        while !drained && clock.now - waitStart < .seconds(60) {
            let info = try? await BlockingIO.run { () throws(NatsError) -> ConsumerInfo in try js.consumerInfo(stream: stream, name: consumer) }
            drained = info.map { $0.numPending == 0 && $0.numAckPending == 0 } ?? false
            if !drained { try await Task.sleep(for: .milliseconds(100)) }
        }
        let caughtUp = clock.now - waitStart
        var recorded = 0
        while clock.now - waitStart < .seconds(60) {
            recorded = (try? await countSucceeded(client, ids: ids, since: since)) ?? recorded
            if recorded >= succeeded { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        notes.append(
            recorded >= succeeded
                ? String(
                    format: "history: every task event written to PostgreSQL %.1f s after the run (its consumer drained); all %d succeeded tasks counted there",
                    caughtUp.totalSeconds, succeeded)
                : "history: only \(recorded) of \(succeeded) succeeded tasks recorded in PostgreSQL 60 s after the run")
        await session.deleteAgents(ids)
        return [
            measurement.result(
                name: name, scenario: BenchScenario.tasks.rawValue, run: settings.run,
                parameters: common.merging(["agents": String(ids.count), "historyRecorded": String(recorded)]) { a, _ in a }, profile: profile, notes: notes)
        ]
    }

    private func countSucceeded(_ client: TaskClient, ids: [AgentID], since: Date) async throws -> Int {
        var total = 0
        for id in ids {
            var cursor: String?
            repeat {
                let page = try await client.list(agent: id, state: .succeeded, from: since, cursor: cursor, limit: 1_000)
                total += page.tasks.count
                cursor = page.nextCursor
            } while cursor != nil
        }
        return total
    }

    // MARK: Gateway

    func gatewayHTTP(name: String, profile: LoadProfile) async throws -> [BenchResult] {
        guard let url = session.gatewayURL else { throw CLIError("gateway-http needs the gateway's URL (--gateway, MESH_GATEWAY or a local mesh)") }
        guard let key = session.apiKey else { throw CLIError("gateway-http needs an API key (--api-key, MESH_API_KEY or <state-dir>/gateway-admin.key)") }
        let ids = try await session.echoAgents(prefix: "bench-http", count: 16, mailbox: 10_000)
        let client = try HTTPLoadClient(url: url, connections: settings.httpConnections)
        defer { client.close() }
        let body = Array(#"{"x":1}"#.utf8)
        let health = HTTPLoadClient.Request(method: "GET", path: "/health", headers: [], body: []).bytes(host: client.host, port: client.port)
        let requests = ids.map {
            HTTPLoadClient.Request(
                method: "POST", path: "/api/v1/agents/\($0.rawValue)/actions/echo",
                headers: [("Authorization", "Bearer \(key)"), ("Content-Type", "application/json")], body: body
            ).bytes(host: client.host, port: client.port)
        }
        // The agents answer through the gateway before the load starts.
        try await client.send(requests[0])
        // Each answer sends the next request from the client's event thread, as wrk does.
        let healthRun = await generator("\(name)/health", profile).run { _, done in client.send(health, completion: done) }
        let actionRun = await generator("\(name)/action", profile).run { index, done in
            client.send(requests[index % requests.count], completion: done)
        }
        await session.deleteAgents(ids)
        let parameters = common.merging(["connections": String(settings.httpConnections), "gateway": url]) { a, _ in a }
        return [
            healthRun.result(
                name: "\(name)/health", scenario: BenchScenario.gatewayHTTP.rawValue, run: settings.run, parameters: parameters, profile: profile,
                notes: ["GET /health over \(settings.httpConnections) keep-alive connections"]),
            actionRun.result(
                name: "\(name)/action", scenario: BenchScenario.gatewayHTTP.rawValue, run: settings.run, parameters: parameters, profile: profile,
                notes: ["POST /api/v1/agents/{id}/actions/echo (bearer key, 16 agents) over \(settings.httpConnections) keep-alive connections"]),
        ]
    }

    // MARK: Raw references

    func natsRaw(name: String) async throws -> [BenchResult] {
        let url = session.natsURL
        let payload = settings.payloadBytes
        func result(_ variant: String, _ raw: RawBenchResult, inFlight: Int = 1, profile: LoadProfile? = nil, notes: String) -> BenchResult {
            var histogram = LogLinearHistogram()
            for value in raw.latenciesNanos { histogram.record(value) }
            return BenchResult(
                name: "\(name)/\(variant)", scenario: BenchScenario.natsRaw.rawValue, run: settings.run,
                parameters: ["payloadBytes": String(payload), "count": String(raw.count)], profile: (profile ?? .max(inFlight: inFlight)).description,
                startedAt: Date(), warmupSeconds: 0, durationSeconds: raw.elapsed.totalSeconds, operations: raw.count, errors: 0, histogram: histogram,
                timeline: [], resources: .none, notes: [notes])
        }
        progress("\(name): cnats request/reply")
        let requestReply = try RawNatsBenchmark.requestReply(url: url, payloadSize: payload, count: 50_000, inFlight: 256)
        let single = try RawNatsBenchmark.requestReply(url: url, payloadSize: 64, count: 5_000, inFlight: 1)
        let rate = BenchRatio.constantActionRate
        let paced = try RawNatsBenchmark.requestReply(url: url, payloadSize: payload, count: rate * 5, inFlight: 1, rate: rate)
        progress("\(name): cnats publish/subscribe")
        let publish = try RawNatsBenchmark.publishSubscribe(url: url, payloadSize: max(8, payload), count: 300_000)
        progress("\(name): JetStream publish → consume + ack")
        let jetStream = try await RawJetStream.run(session.nats, count: 20_000, payloadSize: payload)
        var jsResult = BenchResult(
            name: "\(name)/jetstream", scenario: BenchScenario.natsRaw.rawValue, run: settings.run,
            parameters: ["payloadBytes": String(payload), "count": "20000"], profile: LoadProfile.max(inFlight: 4_000).description, startedAt: Date(),
            warmupSeconds: 0, durationSeconds: jetStream.elapsed.totalSeconds, operations: 20_000, errors: 0, histogram: jetStream.histogram,
            timeline: [], resources: .none, notes: ["async publish (≤ 4 000 pending) to a scratch work-queue stream, one pull consumer (batch 256) acking each"])
        jsResult.parameters["stream"] = RawJetStream.stream
        return [
            result("request-reply", requestReply, inFlight: 256, notes: "C responder (SendAsap), pipelined requests, 256 in flight"),
            result("request-reply-1", single, inFlight: 1, notes: "one request at a time"),
            result(
                "request-reply-\(rate / 1_000)k", paced, profile: .constant(rate: Double(rate)),
                notes: "open loop at a constant \(rate)/s for 5 s, latency from each request's scheduled instant (the reference of actions at that rate)"),
            result("publish", publish, inFlight: 1, notes: "publish → one subscriber in a C callback; latency publish → delivery"),
            jsResult,
        ]
    }

    // MARK: Failover

    func failover(name: String) async throws -> BenchResult {
        var options = BenchFailover.Settings()
        options.runs = settings.failoverRuns
        options.agents = settings.failoverAgents
        return try await failoverResult(name: name, run: settings.run, options: options)
    }
}

/// Pending fan-out operations of the events scenario: each waits until all subscribers
/// delivered its sequence number (or 5 s passed).
final class FanoutTracker: Sendable {
    struct Pending {
        var remaining: Int
        var continuation: CheckedContinuation<Void, any Error>
        var since: ContinuousClock.Instant
    }

    let subscribers: Int
    let pending = Mutex<[UInt64: Pending]>([:])

    init(subscribers: Int) { self.subscribers = subscribers }

    func publishAndWait(_ sequence: UInt64, publish: @Sendable () throws(NatsError) -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            pending.withLock { $0[sequence] = Pending(remaining: subscribers, continuation: continuation, since: .now) }
            do {
                try publish()
            } catch {
                if let entry = pending.withLock({ $0.removeValue(forKey: sequence) }) { entry.continuation.resume(throwing: error) }
            }
        }
    }

    func delivered(_ sequence: UInt64) {
        let done: CheckedContinuation<Void, any Error>? = pending.withLock { table in
            guard var entry = table[sequence] else { return nil }
            entry.remaining -= 1
            if entry.remaining == 0 {
                table.removeValue(forKey: sequence)
                return entry.continuation
            }
            table[sequence] = entry
            return nil
        }
        done?.resume()
    }

    func expire(olderThan age: Duration) {
        let now = ContinuousClock.now
        let expired: [Pending] = pending.withLock { table in
            let old = table.filter { now - $0.value.since > age }
            for key in old.keys { table.removeValue(forKey: key) }
            return Array(old.values)
        }
        for entry in expired {
            entry.continuation.resume(throwing: MeshError(.timeout, "\(entry.remaining) of \(subscribers) subscribers did not get the event within \(age)"))
        }
    }
}

/// Tasks waiting for their `task.succeeded` event; the event may arrive before the
/// submit call returns. Each waiter is a completion, called once on the thread that saw the
/// event (or the sweeper's, on expiry).
final class TaskCompletions: Sendable {
    typealias Done = @Sendable ((any Error)?) -> Void

    enum Entry {
        case waiting(Done, ContinuousClock.Instant)
        case done(ContinuousClock.Instant)
    }

    let entries = Mutex<[String: Entry]>([:])

    func wait(_ taskId: String, then done: @escaping Done) {
        let early = entries.withLock { table -> Bool in
            if case .done = table[taskId] {
                table.removeValue(forKey: taskId)
                return true
            }
            table[taskId] = .waiting(done, .now)
            return false
        }
        if early { done(nil) }
    }

    func succeeded(_ taskId: String) {
        let waiter: Done? = entries.withLock { table in
            switch table[taskId] {
            case .waiting(let done, _):
                table.removeValue(forKey: taskId)
                return done
            case .done:
                return nil
            case nil:
                table[taskId] = .done(.now)
                return nil
            }
        }
        waiter?(nil)
    }

    func expire(olderThan age: Duration) {
        let now = ContinuousClock.now
        let expired: [Done] = entries.withLock { table in
            var out: [Done] = []
            for (key, entry) in table {
                switch entry {
                case .waiting(let done, let since) where now - since > age:
                    out.append(done)
                    table.removeValue(forKey: key)
                case .done(let since) where now - since > age:
                    table.removeValue(forKey: key)
                default:
                    break
                }
            }
            return out
        }
        for done in expired { done(MeshError(.timeout, "the task did not succeed within \(age)")) }
    }
}

/// Raw JetStream reference: async publish to a scratch work-queue stream (file storage,
/// like `MESH_TASKS`) while one pull consumer fetches batches of 256 and acks each.
enum RawJetStream {
    static let stream = "BENCH_RAW_TASKS"

    static func run(_ nats: NatsConnection, count: Int, payloadSize: Int) async throws -> (elapsed: Duration, histogram: LogLinearHistogram) {
        let js = try nats.jetStream()
        var config = StreamConfig(name: stream, subjects: ["benchraw.>"])
        config.retention = .workQueue
        try? js.deleteStream(stream)
        _ = try js.addOrUpdateStream(config)
        defer { try? js.deleteStream(stream) }
        var consumerConfig = ConsumerConfig(durableName: "bench", filterSubject: "benchraw.>")
        consumerConfig.maxAckPending = 10_000
        _ = try js.addOrUpdateConsumer(stream: stream, config: consumerConfig)
        let consumer = try js.pullSubscribe(stream: stream, consumer: "bench")
        defer { try? consumer.unsubscribe() }
        let clock = ContinuousClock()
        let origin = clock.now
        let consume = Task { () throws -> LogLinearHistogram in
            var histogram = LogLinearHistogram()
            var received = 0
            while received < count {
                let batch = try await consumer.fetch(batch: 256, expires: .milliseconds(500))
                let now = UInt64((clock.now - origin).totalNanoseconds)
                for message in batch {
                    try? message.ack()
                    let sent = message.payload.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                    histogram.record(now > sent ? now - sent : 0)
                }
                received += batch.count
            }
            return histogram
        }
        var body = [UInt8](repeating: 0x41, count: max(8, payloadSize))
        for index in 0..<count {
            let now = UInt64((clock.now - origin).totalNanoseconds)
            for byte in 0..<8 { body[byte] = UInt8(truncatingIfNeeded: now >> (8 * UInt64(byte))) }
            while true {
                do {
                    try js.publishAsync("benchraw.\(index % 64)", payload: body, msgId: nil)
                    break
                } catch {
                    guard error.code == .timeout else { throw error }  // window full: wait for acks
                }
            }
        }
        let histogram = try await consume.value
        return (clock.now - origin, histogram)
    }
}
