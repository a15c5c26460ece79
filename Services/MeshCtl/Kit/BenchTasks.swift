import ArgumentParser
import Foundation
import MeshClient
import MeshCore
import MeshProto
import Nats
import Synchronization

/// `meshctl bench tasks`: durable tasks end to end on a running mesh — submitted through
/// `TaskClient` (stream `MESH_TASKS`), executed by the workers, recorded in the PostgreSQL
/// history — against raw JetStream publish + pull consume + ack on a scratch work-queue
/// stream of the same server, in the same run. Creates echo agents `benchtask-<n>` and
/// deletes them (and the scratch stream) after.
///
/// Latency of a task = submit call start → its `task.succeeded` event seen by this process
/// (executed, result stored); of a raw message = publish → consumed. Throughput "recorded"
/// = tasks ÷ time until the history holds all of them as succeeded.
struct BenchTasks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks", abstract: "Durable tasks end to end (submit → executed → recorded) against raw JetStream.")

    @OptionGroup var connection: MeshConnectionOptions

    @Option(name: .customLong("tasks"), help: "Tasks to submit (and raw messages to publish).")
    var tasks: Int = 20_000

    @Option(name: .customLong("agents"), help: "Echo agents the tasks are spread over.")
    var agents: Int = 200

    @Option(name: .customLong("in-flight"), help: "Submissions outstanding at once.")
    var inFlight: Int = 512

    @Option(name: .customLong("payload"), help: "Payload bytes of each task.")
    var payloadSize: Int = 128

    func validate() throws {
        guard (1...10_000_000).contains(tasks), (1...100_000).contains(agents), (1...10_000).contains(inFlight),
            (0...TaskRules.maxPayloadBytes).contains(payloadSize)
        else { throw ValidationError("counts out of range") }
    }

    /// Submit instants and completion latencies, shared with the event handler thread.
    final class Tracker: Sendable {
        struct State {
            var started: [String: ContinuousClock.Instant] = [:]
            var early: [String: ContinuousClock.Instant] = [:]
            var histogram = LogLinearHistogram()
            var done = 0
            var lastDone = ContinuousClock.now
        }
        let state = Mutex(State())

        func submitted(_ id: String, at start: ContinuousClock.Instant) {
            state.withLock { state in
                if let finished = state.early.removeValue(forKey: id) {
                    state.histogram.record(UInt64(max(0, (finished - start).totalNanoseconds)))
                } else {
                    state.started[id] = start
                }
            }
        }

        func succeeded(_ id: String) {
            let now = ContinuousClock.now
            state.withLock { state in
                if let start = state.started.removeValue(forKey: id) {
                    state.histogram.record(UInt64((now - start).totalNanoseconds))
                    state.done += 1
                    state.lastDone = now
                } else if state.early[id] == nil {
                    state.early[id] = now  // the event beat the submit call's return
                    state.done += 1
                    state.lastDone = now
                }
            }
        }
    }

    func run() async throws {
        let (nats, subjects, shardMap) = try await connection.connect()
        defer { nats.close() }
        let registry = RegistryClient(connection: nats, subjects: subjects, shardMap: shardMap)
        let actions = ActionClient(connection: nats, subjects: subjects, shardMap: shardMap)
        let client = try TaskClient(connection: nats, subjects: subjects, shardMap: shardMap)
        let ids = try (0..<agents).map { try AgentID("benchtask-\($0)") }
        let clock = ContinuousClock()
        var rows = [["BENCHMARK", "OPS/S", "P50", "P99", "MAX"]]
        func row(_ name: String, _ count: Int, _ elapsed: Duration, _ histogram: LogLinearHistogram?) {
            rows.append([
                name, String(format: "%.0f", Double(count) / max(elapsed.totalSeconds, 1e-9)),
                histogram.map { BenchFigure.format(nanos: $0.percentile(0.5)) } ?? "-",
                histogram.map { BenchFigure.format(nanos: $0.percentile(0.99)) } ?? "-",
                histogram.map { BenchFigure.format(nanos: $0.max) } ?? "-",
            ])
        }

        progress("creating \(agents) echo agents")
        _ = try await BenchMesh.closedLoop(count: agents, inFlight: min(inFlight, 256)) { index in
            _ = try await registry.upsert(AgentSpec(id: ids[index].rawValue, kind: "echo", labels: ["bench": "tasks"], mailboxCapacity: 10_000))
        }
        for id in ids { _ = try await actions.act(id, action: "ping", timeout: .seconds(30)) }

        // Tasks: submit all, watch their succeeded events, then wait for the history.
        let tracker = Tracker()
        let events = try nats.subscribe(subjects.event(.taskSucceeded), maxPendingMessages: 1_000_000, maxPendingBytes: 1 << 30) { message in
            guard let event = try? Event(serializedBytes: message.payload), let record = TaskEvents.record(of: event),
                record.agentId.hasPrefix("benchtask-")
            else { return }
            tracker.succeeded(record.taskId)
        }
        defer { try? events.unsubscribe() }
        try nats.flush(timeout: .seconds(5))
        let payload = [UInt8](repeating: 0x41, count: payloadSize)
        progress("submitting \(tasks) tasks, \(inFlight) in flight")
        let start = clock.now
        let startDate = Date().addingTimeInterval(-1)
        let submitLatency = try await BenchMesh.closedLoop(count: tasks, inFlight: inFlight) { index in
            let begin = ContinuousClock.now
            let submitted = try await client.submit(TaskSubmission(agent: ids[index % ids.count], action: "echo", payload: payload))
            tracker.submitted(submitted.taskId, at: begin)
        }
        let submitElapsed = clock.now - start
        while tracker.state.withLock({ $0.done }) < tasks {
            if clock.now - tracker.state.withLock({ $0.lastDone }) > .seconds(30) && clock.now - start > .seconds(30) {
                throw CLIError("only \(tracker.state.withLock { $0.done }) of \(tasks) tasks executed; stalled for 30 s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let executed = tracker.state.withLock { ($0.lastDone, $0.histogram) }
        progress("waiting for the history")
        var recordedAt = clock.now
        while true {
            if try await countSucceeded(client, since: startDate) >= tasks {
                recordedAt = clock.now
                break
            }
            if clock.now - executed.0 > .seconds(120) { throw CLIError("the history did not catch up within 120 s") }
            try await Task.sleep(for: .milliseconds(100))
        }
        row("task submit (\(inFlight) in flight)", tasks, submitElapsed, submitLatency)
        row("task submit → executed", tasks, executed.0 - start, executed.1)
        row("task submit → recorded in history", tasks, recordedAt - start, nil)

        // Raw JetStream on a scratch work-queue stream: async publish + pull consume + ack.
        progress("raw JetStream: \(tasks) messages")
        let raw = try await rawJetStream(nats, count: tasks)
        row("raw JetStream publish → consume + ack", tasks, raw.elapsed, raw.histogram)

        progress("deleting the bench agents")
        _ = try await BenchMesh.closedLoop(count: agents, inFlight: min(inFlight, 256)) { index in _ = try? await registry.delete(ids[index]) }
        say(Table.render(rows))
        let taskRate = Double(tasks) / (executed.0 - start).totalSeconds
        let rawRate = Double(tasks) / raw.elapsed.totalSeconds
        say(String(format: "\ntasks executed ÷ raw JetStream (same run): %.1f %% (%.0f vs %.0f per s)", 100 * taskRate / rawRate, taskRate, rawRate))
    }

    /// Succeeded bench tasks in the history (paged count; the bench agents only).
    private func countSucceeded(_ client: TaskClient, since: Date) async throws -> Int {
        var total = 0
        for index in 0..<agents {
            var cursor: String?
            repeat {
                let page = try await client.list(agent: try AgentID("benchtask-\(index)"), state: .succeeded, from: since, cursor: cursor, limit: 1_000)
                total += page.tasks.count
                cursor = page.nextCursor
            } while cursor != nil
        }
        return total
    }

    /// Publishes `count` messages asynchronously to a scratch work-queue stream (file storage,
    /// like `MESH_TASKS`) while one pull consumer fetches batches of 256 and acks each.
    private func rawJetStream(_ nats: NatsConnection, count: Int) async throws -> (elapsed: Duration, histogram: LogLinearHistogram) {
        let js = try nats.jetStream()
        let stream = "BENCH_RAW_TASKS"
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
        let start = clock.now
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
        return (clock.now - start, histogram)
    }

    private func progress(_ text: String) { FileHandle.standardError.write(Data("bench: \(text)\n".utf8)) }
}
