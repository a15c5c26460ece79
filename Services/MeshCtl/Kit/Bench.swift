import ArgumentParser
import Foundation
import LocalServers
import MeshCore
import MeshProto
import Nats
import Synchronization

/// `meshctl bench`: performance measurements — scenarios under load profiles, result files
/// and HTML reports, SLO checks, regression verdicts against baselines, stored history.
/// Figures are for release builds.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the mesh's performance.",
        subcommands: [BenchRun.self, BenchAll.self, BenchCheck.self, BenchCompare.self, BenchHistory.self, BenchReport.self, BenchFailover.self, Wire.self])
}

/// `meshctl bench wire`: the wire layer — protobuf encode/decode of an `ActionRequest`,
/// publish/subscribe and request/reply through the Swift NATS wrapper, and the same
/// through plain cnats (no Swift in the path) in the same run, against a nats-server of
/// its own (or `--nats-url`).
struct Wire: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Protobuf codec, pub/sub and request/reply: Swift wrapper vs raw cnats, same run.")

    @Option(name: .customLong("nats-url"), help: "Use this server instead of starting one.")
    var natsURL: String?

    @Option(name: .customLong("payload"), help: "Payload bytes of each message.")
    var payloadSize: Int = 128

    @Option(name: .customLong("requests"), help: "Request/reply round trips per run.")
    var requests: Int = 100_000

    @Option(name: .customLong("in-flight"), help: "Concurrent requests outstanding.")
    var inFlight: Int = 256

    @Option(name: .customLong("messages"), help: "Messages per publish/subscribe run.")
    var messages: Int = 500_000

    @Option(name: .customLong("codec-iterations"), help: "Encode/decode iterations.")
    var codecIterations: Int = 1_000_000

    @Option(name: .customLong("runs"), help: "Repetitions; the median is reported.")
    var runs: Int = 3

    @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
    var output: OutputFormat = .table

    func validate() throws {
        guard (0...1_048_576).contains(payloadSize) else { throw ValidationError("--payload must be in 0...1048576") }
        guard (1...10_000_000).contains(requests), (1...10_000_000).contains(messages), (1...100_000_000).contains(codecIterations) else {
            throw ValidationError("counts must be positive and at most 10 M (100 M for codec)")
        }
        guard (1...10_000).contains(inFlight) else { throw ValidationError("--in-flight must be in 1...10000") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs must be in 1...20") }
    }

    func run() async throws {
        var server: LocalNatsServer?
        let url: String
        if let natsURL {
            url = natsURL
        } else {
            let directory = try LocalHost.makeTempDirectory(prefix: "bench")
            server = try await LocalNatsServer(directory: directory, port: try LocalHost.freePort(), monitorPort: try LocalHost.freePort(), jetstream: false)
            url = server!.url
        }
        defer {
            server?.stop()
            if let server { try? FileManager.default.removeItem(atPath: server.directory) }
        }

        var results: [BenchFigure] = []
        results += codec()
        for run in 1...runs {
            progress("run \(run)/\(runs): request/reply")
            results.append(try await swiftRequestReply(url: url))
            results.append(try rawFigure("raw cnats request/reply", RawNatsBenchmark.requestReply(url: url, payloadSize: payloadSize, count: requests, inFlight: inFlight)))
            results.append(
                try rawFigure(
                    "raw cnats request/reply, natsMsg_Destroy",
                    RawNatsBenchmark.requestReply(url: url, payloadSize: payloadSize, count: requests, inFlight: inFlight, plainDestroy: true)))
            progress("run \(run)/\(runs): publish/subscribe")
            results.append(try await swiftPublishSubscribe(url: url))
            results.append(try rawFigure("raw cnats publish/subscribe", RawNatsBenchmark.publishSubscribe(url: url, payloadSize: payloadSize, count: messages)))
        }
        let summary = BenchFigure.medians(results)
        report(summary)
    }

    private func progress(_ line: String) { FileHandle.standardError.write(Data("bench: \(line)\n".utf8)) }

    // MARK: Protobuf

    private func codec() -> [BenchFigure] {
        let request = ActionRequest(
            requestId: "0190f3b2-7c1a-7def-8000-000000000001", agentId: "pricing-expert-1", action: "quote",
            payload: [UInt8](repeating: 0x41, count: payloadSize), deadlineUnixMs: 1_790_000_000_000, shardEpoch: 42)
        let clock = ContinuousClock()
        var bytes: [UInt8] = []
        let encodeStart = clock.now
        for _ in 0..<codecIterations { bytes = request.serializedBytes() }
        let encodeElapsed = clock.now - encodeStart
        var decoded = 0
        let decodeStart = clock.now
        for _ in 0..<codecIterations {
            if let value = try? ActionRequest(serializedBytes: bytes) { decoded &+= value.action.utf8.count }
        }
        let decodeElapsed = clock.now - decodeStart
        precondition(decoded == codecIterations * 5, "decode produced wrong values")
        return [
            BenchFigure(name: "protobuf encode ActionRequest", operations: codecIterations, elapsed: encodeElapsed, histogram: nil),
            BenchFigure(name: "protobuf decode ActionRequest", operations: codecIterations, elapsed: decodeElapsed, histogram: nil),
        ]
    }

    // MARK: Swift wrapper

    private func swiftRequestReply(url: String) async throws -> BenchFigure {
        let responder = try await CLIConnection.connect(url)
        let requester = try await CLIConnection.connect(url)
        defer {
            responder.close()
            requester.close()
        }
        let subject = "bench.rr.\(UInt32.random(in: 0...UInt32.max))"
        let reply = [UInt8](repeating: 0x42, count: payloadSize)
        let subscription = try responder.subscribe(subject, queue: nil) { message in
            try? responder.respond(to: message, payload: reply)
        }
        defer { try? subscription.unsubscribe() }
        try responder.flush(timeout: .seconds(5))
        let payload = [UInt8](repeating: 0x41, count: payloadSize)
        let total = requests
        let workers = min(inFlight, total)
        let clock = ContinuousClock()
        let start = clock.now
        let histograms = try await withThrowingTaskGroup(of: LogLinearHistogram.self) { group in
            for worker in 0..<workers {
                let share = total / workers + (worker < total % workers ? 1 : 0)
                group.addTask {
                    var histogram = LogLinearHistogram()
                    for _ in 0..<share {
                        let sent = clock.now
                        _ = try await requester.request(subject, payload: payload, timeout: .seconds(10))
                        histogram.record(UInt64((clock.now - sent).totalNanoseconds))
                    }
                    return histogram
                }
            }
            var merged = LogLinearHistogram()
            for try await histogram in group { merged = merged.merged(with: histogram) }
            return merged
        }
        return BenchFigure(name: "swift request/reply", operations: total, elapsed: clock.now - start, histogram: histograms)
    }

    private func swiftPublishSubscribe(url: String) async throws -> BenchFigure {
        let subscriber = try await CLIConnection.connect(url)
        // Batched writes on the publishing side, as the raw cnats publisher has.
        let publisher = try await CLIConnection.connect(url, sendAsap: false)
        defer {
            subscriber.close()
            publisher.close()
        }
        let subject = "bench.ps.\(UInt32.random(in: 0...UInt32.max))"
        let received = Atomic<Int>(0)
        let total = messages
        let subscription = try subscriber.subscribe(subject, queue: nil) { _ in received.add(1, ordering: .relaxed) }
        defer { try? subscription.unsubscribe() }
        try subscriber.flush(timeout: .seconds(5))
        let payload = [UInt8](repeating: 0x41, count: payloadSize)
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<total { try publisher.publish(subject, payload: payload) }
        try publisher.flush(timeout: .seconds(30))
        let deadline = clock.now + .seconds(60)
        while received.load(ordering: .relaxed) < total && clock.now < deadline { try await Task.sleep(for: .microseconds(200)) }
        let elapsed = clock.now - start
        let got = received.load(ordering: .relaxed)
        if got < total { progress("swift publish/subscribe: \(total - got) of \(total) messages not received (slow consumer)") }
        return BenchFigure(name: "swift publish/subscribe", operations: got, elapsed: elapsed, histogram: nil)
    }

    private func rawFigure(_ name: String, _ result: RawBenchResult) -> BenchFigure {
        var histogram: LogLinearHistogram?
        if !result.latenciesNanos.isEmpty {
            var collected = LogLinearHistogram()
            for value in result.latenciesNanos { collected.record(value) }
            histogram = collected
        }
        return BenchFigure(name: name, operations: result.count, elapsed: result.elapsed, histogram: histogram)
    }

    // MARK: Report

    private func report(_ figures: [BenchFigure]) {
        let byName = Dictionary(figures.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let ratios: [(String, Double)] = [
            ("request/reply swift ÷ raw", ratio(byName["swift request/reply"], byName["raw cnats request/reply"])),
            ("request/reply swift ÷ raw with cnats' natsMsg_Destroy", ratio(byName["swift request/reply"], byName["raw cnats request/reply, natsMsg_Destroy"])),
            ("publish/subscribe swift ÷ raw", ratio(byName["swift publish/subscribe"], byName["raw cnats publish/subscribe"])),
        ]
        switch output {
        case .json:
            let document: [String: Any] = [
                "payloadBytes": payloadSize, "inFlight": inFlight, "runs": runs,
                "figures": figures.map { $0.json },
                "ratios": Dictionary(uniqueKeysWithValues: ratios.map { ($0.0, $0.1) }),
            ]
            if let data = try? JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]) {
                say(String(decoding: data, as: UTF8.self))
            }
        case .table:
            var rows = [["BENCHMARK", "OPS/S", "P50", "P99", "MAX"]]
            for figure in figures {
                rows.append([
                    figure.name, String(format: "%.0f", figure.rate),
                    figure.histogram.map { BenchFigure.format(nanos: $0.percentile(0.5)) } ?? "-",
                    figure.histogram.map { BenchFigure.format(nanos: $0.percentile(0.99)) } ?? "-",
                    figure.histogram.map { BenchFigure.format(nanos: $0.max) } ?? "-",
                ])
            }
            say(Table.render(rows))
            say("")
            for (name, value) in ratios { say("\(name): \(String(format: "%.1f %%", value * 100))") }
            say("(payload \(payloadSize) B, \(inFlight) requests in flight, median of \(runs) run(s))")
        }
    }

    private func ratio(_ swift: BenchFigure?, _ raw: BenchFigure?) -> Double {
        guard let swift, let raw, raw.rate > 0 else { return 0 }
        return swift.rate / raw.rate
    }
}

/// One measured benchmark.
struct BenchFigure {
    var name: String
    var operations: Int
    var elapsed: Duration
    var histogram: LogLinearHistogram?

    var rate: Double {
        let seconds = elapsed.totalSeconds
        return seconds > 0 ? Double(operations) / seconds : 0
    }

    var json: [String: Any] {
        var entry: [String: Any] = ["name": name, "operations": operations, "opsPerSecond": rate]
        if let histogram {
            entry["p50Nanos"] = histogram.percentile(0.5)
            entry["p99Nanos"] = histogram.percentile(0.99)
            entry["maxNanos"] = histogram.max
        }
        return entry
    }

    /// Per name, the run with the median rate.
    static func medians(_ figures: [BenchFigure]) -> [BenchFigure] {
        var order: [String] = []
        var groups: [String: [BenchFigure]] = [:]
        for figure in figures {
            if groups[figure.name] == nil { order.append(figure.name) }
            groups[figure.name, default: []].append(figure)
        }
        return order.map { name in
            let sorted = groups[name]!.sorted { $0.rate < $1.rate }
            return sorted[sorted.count / 2]
        }
    }

    static func format(nanos: UInt64) -> String {
        if nanos < 10_000 { return "\(nanos) ns" }
        if nanos < 10_000_000 { return String(format: "%.1f µs", Double(nanos) / 1_000) }
        return String(format: "%.2f ms", Double(nanos) / 1_000_000)
    }
}

