import ArgumentParser
import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import Nats

/// `meshctl bench mesh`: the agent path of a running mesh — agent creation through the
/// registry, action round trips through the workers (max throughput with many in flight,
/// then latency at half that rate), registry lookups over NATS and from the client-side
/// directory — with plain cnats request/reply measured against the same server in the
/// same run as the physical reference. Creates agents `bench-<n>` and deletes them after.
struct BenchMesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh", abstract: "Agent creation, actions and registry lookups of a running mesh, against raw cnats.")

    @OptionGroup var connection: MeshConnectionOptions

    @Option(name: .customLong("agents"), help: "Echo agents to create and spread actions over.")
    var agents: Int = 1_000

    @Option(name: .customLong("requests"), help: "Action round trips in the throughput run.")
    var requests: Int = 50_000

    @Option(name: .customLong("in-flight"), help: "Concurrent requests outstanding.")
    var inFlight: Int = 256

    @Option(name: .customLong("lookups"), help: "Registry lookups per method.")
    var lookups: Int = 20_000

    func validate() throws {
        guard (1...100_000).contains(agents), (1...10_000_000).contains(requests), (1...10_000).contains(inFlight),
            (1...10_000_000).contains(lookups)
        else { throw ValidationError("counts out of range") }
    }

    func run() async throws {
        let (nats, subjects, shardMap) = try await connection.connect()
        defer { nats.close() }
        let registry = RegistryClient(connection: nats, subjects: subjects, shardMap: shardMap)
        let actions = ActionClient(connection: nats, subjects: subjects, shardMap: shardMap)
        let ids = try (0..<agents).map { try AgentID("bench-\($0)") }
        let clock = ContinuousClock()
        var rows = [["BENCHMARK", "OPS/S", "P50", "P99", "MAX"]]
        func row(_ name: String, _ count: Int, _ elapsed: Duration, _ histogram: LogLinearHistogram?) {
            let seconds = elapsed.totalSeconds
            rows.append([
                name, String(format: "%.0f", Double(count) / max(seconds, 1e-9)),
                histogram.map { BenchFigure.format(nanos: $0.percentile(0.5)) } ?? "-",
                histogram.map { BenchFigure.format(nanos: $0.percentile(0.99)) } ?? "-",
                histogram.map { BenchFigure.format(nanos: $0.max) } ?? "-",
            ])
        }

        // Agent creation: registry round trips, `inFlight` at a time.
        FileHandle.standardError.write(Data("bench: creating \(agents) agents\n".utf8))
        var start = clock.now
        let created = try await Self.closedLoop(count: agents, inFlight: inFlight) { index in
            _ = try await registry.upsert(AgentSpec(id: ids[index].rawValue, kind: "echo", labels: ["bench": "mesh"]))
        }
        row("agent create (registry, \(inFlight) in flight)", agents, clock.now - start, created)

        // Wait until every agent answers (placed and started).
        for id in ids { _ = try await actions.act(id, action: "ping", timeout: .seconds(30)) }

        // Actions: max throughput with many in flight, then latency at half that rate.
        let payload = [UInt8](repeating: 0x41, count: 128)
        start = clock.now
        let maxRun = try await Self.closedLoop(count: requests, inFlight: inFlight) { index in
            _ = try await actions.act(ids[index % ids.count], action: "echo", payload: payload)
        }
        let maxElapsed = clock.now - start
        row("action round trip (\(inFlight) in flight)", requests, maxElapsed, maxRun)
        let maxRate = Double(requests) / maxElapsed.totalSeconds
        let halfRate = max(1, maxRate / 2)
        let paced = min(requests, Int(halfRate * 5))
        start = clock.now
        let pacedRun = try await Self.openLoop(count: paced, rate: halfRate) { index in
            _ = try await actions.act(ids[index % ids.count], action: "echo", payload: payload)
        }
        row(String(format: "action round trip at %.0f/s (open loop)", halfRate), paced, clock.now - start, pacedRun)
        let raw = try RawNatsBenchmark.requestReply(url: connection.resolvedURL, payloadSize: 128, count: requests, inFlight: inFlight)
        var rawHistogram = LogLinearHistogram()
        for value in raw.latenciesNanos { rawHistogram.record(value) }
        row("raw cnats request/reply (\(inFlight) in flight)", raw.count, raw.elapsed, rawHistogram)

        // Registry lookups: over NATS one at a time, raw cnats one at a time, the directory.
        start = clock.now
        let overNATS = try await Self.closedLoop(count: lookups, inFlight: 1) { index in _ = try await registry.get(ids[index % ids.count]) }
        row("registry get over NATS (1 in flight)", lookups, clock.now - start, overNATS)
        let rawOne = try RawNatsBenchmark.requestReply(url: connection.resolvedURL, payloadSize: 64, count: lookups, inFlight: 1)
        var rawOneHistogram = LogLinearHistogram()
        for value in rawOne.latenciesNanos { rawOneHistogram.record(value) }
        row("raw cnats request/reply (1 in flight)", rawOne.count, rawOne.elapsed, rawOneHistogram)
        let js = try nats.jetStream()
        let directory = try AgentDirectory(
            agents: try js.keyValue(subjects.agentsBucket), status: try js.keyValue(subjects.statusBucket), logger: Logger(label: "meshctl"))
        let cached: LogLinearHistogram = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await directory.run() }
            await directory.waitUntilLoaded()
            var histogram = LogLinearHistogram()
            start = clock.now
            for index in 0..<lookups {
                let begin = clock.now
                guard directory.record(ids[index % ids.count]) != nil else { throw CLIError("directory misses \(ids[index % ids.count])") }
                histogram.record(UInt64((clock.now - begin).totalNanoseconds))
            }
            row("registry lookup from the directory cache", lookups, clock.now - start, histogram)
            directory.stop()
            group.cancelAll()
            return histogram
        }
        _ = cached

        FileHandle.standardError.write(Data("bench: deleting the bench agents\n".utf8))
        _ = try await Self.closedLoop(count: agents, inFlight: inFlight) { index in _ = try? await registry.delete(ids[index]) }
        say(Table.render(rows))
        say(String(format: "\nactions ÷ raw cnats request/reply (same run, %d in flight): %.1f %%", inFlight,
            100 * maxRate / (Double(raw.count) / raw.elapsed.totalSeconds)))
        say(String(format: "registry get over NATS p99 ÷ raw cnats p99: %.2f", Double(overNATS.percentile(0.99)) / Double(max(1, rawOneHistogram.percentile(0.99)))))
    }

    /// Runs `count` operations with `inFlight` outstanding; returns their latencies.
    static func closedLoop(count: Int, inFlight: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws -> LogLinearHistogram {
        let clock = ContinuousClock()
        let workers = max(1, min(inFlight, count))
        return try await withThrowingTaskGroup(of: LogLinearHistogram.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var histogram = LogLinearHistogram()
                    var index = worker
                    while index < count {
                        let begin = clock.now
                        try await operation(index)
                        histogram.record(UInt64((clock.now - begin).totalNanoseconds))
                        index += workers
                    }
                    return histogram
                }
            }
            var merged = LogLinearHistogram()
            for try await histogram in group { merged = merged.merged(with: histogram) }
            return merged
        }
    }

    /// Starts operations at a fixed `rate` regardless of completions; latency is measured
    /// from each operation's scheduled start (no coordinated omission).
    static func openLoop(count: Int, rate: Double, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws -> LogLinearHistogram {
        let clock = ContinuousClock()
        let start = clock.now
        let interval = Duration.nanoseconds(Int64(1e9 / rate))
        return try await withThrowingTaskGroup(of: UInt64.self) { group in
            for index in 0..<count {
                let scheduled = start + interval * index
                try await clock.sleep(until: scheduled)
                group.addTask {
                    try await operation(index)
                    return UInt64((clock.now - scheduled).totalNanoseconds)
                }
            }
            var histogram = LogLinearHistogram()
            for try await latency in group { histogram.record(latency) }
            return histogram
        }
    }
}
