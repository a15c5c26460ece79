import Foundation
import MeshBench
import MeshCore
import Testing

@Suite struct PercentileTests {
    @Test func percentilesOfAUniformDistributionAreWithinOneBucket() {
        var histogram = LogLinearHistogram()
        for value in 1...100_000 { histogram.record(UInt64(value) * 1_000) }  // 1 µs … 100 ms
        let summary = LatencySummary(histogram)
        for (measured, exact) in [
            (summary.p50Micros, 50_000.0), (summary.p90Micros, 90_000), (summary.p95Micros, 95_000), (summary.p99Micros, 99_000),
            (summary.p999Micros, 99_900),
        ] {
            // The upper bound of the bucket: never below the true value, at most 1/32 above.
            #expect(measured >= exact && measured <= exact * (1 + 1.0 / 32), "\(measured) vs \(exact)")
        }
        #expect(summary.maxMicros == 100_000 && summary.minMicros == 1 && summary.count == 100_000)
        #expect(abs(summary.meanMicros - 50_000.5) < 0.001)
    }

    @Test func aSingleValueIsEveryPercentile() {
        var histogram = LogLinearHistogram()
        histogram.record(123_456)
        let summary = LatencySummary(histogram)
        #expect([summary.p50Micros, summary.p99Micros, summary.p999Micros, summary.maxMicros].allSatisfy { $0 == 123.456 })
    }

    @Test func mergingEqualsRecordingEverythingInOne() {
        var a = LogLinearHistogram(), b = LogLinearHistogram(), all = LogLinearHistogram()
        var generator = SystemRandomNumberGenerator()
        for index in 0..<20_000 {
            let value = UInt64.random(in: 1_000...50_000_000, using: &generator)
            if index % 3 == 0 { a.record(value) } else { b.record(value) }
            all.record(value)
        }
        let merged = a.merged(with: b)
        #expect(merged == all)
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] { #expect(merged.percentile(q) == all.percentile(q)) }
        // Averaging the two p99s is not the merged p99 in general; the merge is exact.
        #expect(LatencySummary(merged) == LatencySummary(all))
    }

    @Test func mergingDifferentPrecisionsKeepsCountsAndBounds() {
        var fine = LogLinearHistogram(precisionBits: 7), coarse = LogLinearHistogram(precisionBits: 3)
        for value in stride(from: UInt64(1_000), through: 1_000_000, by: 997) { fine.record(value) }
        for value in stride(from: UInt64(5_000), through: 2_000_000, by: 1_009) { coarse.record(value) }
        let merged = fine.merged(with: coarse)
        #expect(merged.precisionBits == 3 && merged.count == fine.count + coarse.count)
        #expect(merged.min == 1_000 && merged.max == coarse.max)
        #expect(merged.percentile(1) == merged.max)
    }

    @Test func histogramDataRoundTripsThroughJSON() throws {
        var histogram = LogLinearHistogram()
        for value in [500, 1_500, 1_500, 2_000_000, 9_999_999] as [UInt64] { histogram.record(value) }
        let data = try JSONEncoder().encode(HistogramData(histogram))
        let back = try JSONDecoder().decode(HistogramData.self, from: data).histogram()
        #expect(back == histogram)
        var bad = HistogramData(histogram)
        bad.precisionBits = 40
        #expect(throws: MeshError.self) { try bad.histogram() }
    }
}

@Suite struct RunRecorderTests {
    @Test func warmupAndLateCompletionsStayOutOfTheWindow() {
        var recorder = RunRecorder(warmupSeconds: 2, durationSeconds: 3)
        recorder.record(at: -1.5, latencyNanos: 9_000_000, failed: false)  // warm-up
        recorder.record(at: 0.1, latencyNanos: 1_000, failed: false)
        recorder.record(at: 1.2, latencyNanos: 2_000, failed: false)
        recorder.record(at: 2.9, latencyNanos: 0, failed: true)
        recorder.record(at: 3.5, latencyNanos: 7_000_000, failed: false)  // after the window
        #expect(recorder.operations == 3 && recorder.errors == 1)
        #expect(recorder.measured.count == 2 && recorder.measured.max == 2_000)
        #expect(recorder.total == 5 && recorder.totalErrors == 1)
        let timeline = recorder.timeline { $0 < 0 ? nil : 100 }
        #expect(timeline.map(\.second) == [-2, -1, 0, 1, 2])
        #expect(timeline.map(\.operations) == [1, 0, 1, 1, 1])
        #expect(timeline[4].errors == 1 && timeline[0].targetRate == nil && timeline[2].targetRate == 100)
        #expect(timeline[0].p99Micros == 9_000)
    }
}

@Suite struct ResultFileTests {
    static func sample(name: String = "actions", throughput ops: Int = 1_000, run: Int = 1, p99Nanos: UInt64 = 2_000_000) -> BenchResult {
        var histogram = LogLinearHistogram()
        for _ in 0..<98 { histogram.record(500_000) }
        histogram.record(p99Nanos, times: 2)
        return BenchResult(
            name: name, scenario: name.split(separator: "/").first.map(String.init) ?? name, run: run, parameters: ["agents": "10"],
            profile: "constant:100", startedAt: Date(timeIntervalSince1970: 1_790_000_000), warmupSeconds: 1, durationSeconds: 10,
            operations: ops * 10, errors: 0, histogram: histogram,
            timeline: [TimelinePoint(second: 0, targetRate: 100, operations: 100, errors: 0, p50Micros: 500, p99Micros: 2_000, maxMicros: 2_000)],
            resources: ResourceUsage(processes: [ProcessUsage(name: "mesh-agent-worker", pid: 42, cpuPercent: 55, rssBytes: 50 << 20, rssPeakBytes: 51 << 20, rssDeltaBytes: 1 << 20)], windowSeconds: 10))
    }

    @Test func aDocumentRoundTripsThroughItsJSONFile() throws {
        let document = BenchDocument(
            createdAt: Date(timeIntervalSince1970: 1_790_000_000), gitRevision: "abc123", machine: MachineInfo(cores: 2, memoryBytes: 24 << 30, os: "Linux", hostname: "h"),
            target: "local", results: [Self.sample(), Self.sample(name: "registry-lookup/cache")],
            ratios: [BenchRatio(name: "actions ÷ raw", numerator: "actions", denominator: "nats-raw/request-reply", metric: .throughput, value: 0.4)])
        let data = try document.encoded()
        let back = try BenchDocument.decode(data, source: "test")
        #expect(back == document && back.failures == nil)
        var failed = document
        failed.failures = [BenchFailure(scenario: "tasks", run: 2, error: "unavailable: no responders")]
        #expect(try BenchDocument.decode(try failed.encoded(), source: "test").failures == failed.failures)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let first = (object?["results"] as? [[String: Any]])?.first
        #expect(object?["schemaVersion"] as? Int == 1 && first?["throughput"] as? Double == 1_000)
        #expect((first?["latency"] as? [String: Any])?["p99Micros"] as? Double == 2_000)
        #expect((first?["resources"] as? [String: Any])?["rssGrowthBytesPerHour"] as? Double == Double(1 << 20) * 360)
    }

    @Test func theJSONSchemaNamesEveryFieldTheFileHas() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("Deploy/bench/result.schema.json"))) as? [String: Any]
        let document = BenchDocument(
            createdAt: Date(), gitRevision: "abc", machine: .current, target: "local", results: [Self.sample()],
            ratios: [BenchRatio(name: "r", numerator: "a", denominator: "b", metric: .p99, value: 1)],
            failures: [BenchFailure(scenario: "tasks", run: 1, error: "e")])
        let object = try JSONSerialization.jsonObject(with: try document.encoded()) as? [String: Any] ?? [:]
        func keys(_ node: [String: Any]?) -> (required: Set<String>, all: Set<String>) {
            (Set(node?["required"] as? [String] ?? []), Set((node?["properties"] as? [String: Any])?.keys.map { $0 } ?? []))
        }
        // Every key written is documented and every required key is written, at each level.
        func check(_ value: [String: Any], against node: [String: Any]?, _ path: String) {
            let (required, all) = keys(node)
            #expect(Set(value.keys).subtracting(all).isEmpty, "undocumented at \(path): \(Set(value.keys).subtracting(all))")
            #expect(required.subtracting(value.keys).isEmpty, "missing at \(path): \(required.subtracting(value.keys))")
        }
        check(object, against: schema, "document")
        let properties = schema?["properties"] as? [String: Any]
        check(object["machine"] as? [String: Any] ?? [:], against: properties?["machine"] as? [String: Any], "machine")
        check((object["ratios"] as? [[String: Any]])?.first ?? [:], against: (properties?["ratios"] as? [String: Any])?["items"] as? [String: Any], "ratio")
        check((object["failures"] as? [[String: Any]])?.first ?? [:], against: (properties?["failures"] as? [String: Any])?["items"] as? [String: Any], "failure")
        let resultNode = (schema?["$defs"] as? [String: Any])?["result"] as? [String: Any]
        let result = (object["results"] as? [[String: Any]])?.first ?? [:]
        check(result, against: resultNode, "result")
        let resultProperties = resultNode?["properties"] as? [String: Any]
        for key in ["latency", "histogram", "resources"] {
            check(result[key] as? [String: Any] ?? [:], against: resultProperties?[key] as? [String: Any], key)
        }
        check((result["timeline"] as? [[String: Any]])?.first ?? [:], against: (resultProperties?["timeline"] as? [String: Any])?["items"] as? [String: Any], "timeline")
        let processNode = ((resultProperties?["resources"] as? [String: Any])?["properties"] as? [String: Any])?["processes"] as? [String: Any]
        check(((result["resources"] as? [String: Any])?["processes"] as? [[String: Any]])?.first ?? [:], against: processNode?["items"] as? [String: Any], "process")
    }

    @Test func badFilesAreRejectedWithAReason() throws {
        #expect(throws: MeshError.self) { try BenchDocument.decode(Data("not json".utf8), source: "x") }
        do {
            _ = try BenchDocument.decode(Data(#"{"schemaVersion": 1}"#.utf8), source: "r.json")
            Issue.record("decoded a document without results")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("r.json") && error.message.contains("missing field"))
        }
        var document = BenchDocument(
            createdAt: Date(), gitRevision: "unknown", machine: .current, target: "local", results: [Self.sample()])
        document.schemaVersion = 99
        let encoded = try document.encoded()
        do {
            _ = try BenchDocument.decode(encoded, source: "new.json")
            Issue.record("decoded schema 99")
        } catch {
            #expect(error.message.contains("schema version 99"))
        }
        #expect(throws: MeshError.self) { try BenchDocument.read(path: "/nonexistent/bench.json") }
    }

    @Test func theHTMLReportIsSelfContainedAndHasThreeChartsPerResult() throws {
        var reference = Self.sample(name: "nats-raw/request-reply")
        reference.timeline = []
        let document = BenchDocument(
            createdAt: Date(), gitRevision: "abc", machine: .current, target: "local",
            results: [Self.sample(), Self.sample(name: "events/<100>"), reference])
        let html = HTMLReport.render(document)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        // Three charts per run with a timeline, the distribution alone for a reference run.
        #expect(html.components(separatedBy: "<svg").count - 1 == 7)
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"))
        #expect(html.contains("events/&lt;100&gt;") && !html.contains("events/<100>"))
        #expect(html.contains("<polyline"))
    }
}
