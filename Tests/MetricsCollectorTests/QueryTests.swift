import MeshCore
import MeshProto
@testable import MetricsCollectorService
import Testing

@Suite struct CollectorQueryTests {
    /// Three 1 s steps of two workers: 10 ok + 1 failed action per step each, action
    /// latencies of 1 ms, and 0.5 s of CPU per step on worker a.
    func frames() throws -> [Frame] {
        var cluster = model()
        var result: [Frame] = []
        var latencies: [UInt64] = []
        for step in 0..<4 {
            let now = Int64(step) * 1000
            latencies += Array(repeating: 1_000_000, count: 11)
            for name in ["a", "b"] {
                let snap = Snap.make(
                    "mesh-agent-worker", name, at: now, started: -1,
                    counters: [
                        ("mesh_actions_total", ["outcome": "ok"], UInt64(step * 10)), ("mesh_actions_total", ["outcome": "error"], UInt64(step)),
                    ],
                    gauges: [
                        ("mesh_process_cpu_seconds", [:], name == "a" ? Double(step) * 0.5 : 0), ("mesh_process_resident_memory_bytes", [:], 100),
                        ("mesh_process_memory_limit_bytes", [:], 400),
                    ],
                    histograms: [Snap.histogram("mesh_action_duration", latencies)])
                try cluster.ingest(snap.0, subject: snap.1, prefix: "mesh", now: now)
            }
            result.append(cluster.takeFrame(now: now))
        }
        return result
    }

    @Test func seriesOfACounterIsItsRatePerStep() throws {
        let reply = CollectorQueries.series(
            MetricSeriesRequest(name: "mesh_actions_total", minutes: 1, groupBy: "series", labels: ["outcome": "error"]), frames: try frames(),
            windowMinutes: 30)
        #expect(reply.error == nil)
        #expect(reply.stepMs == 1000)
        #expect(reply.series.count == 2)
        for series in reply.series {
            #expect(series.kind == "counter" && series.unit == "per_second" && series.labels["outcome"] == "error")
            #expect(series.points.map(\.value) == [1, 1, 1])
        }
        let merged = CollectorQueries.series(MetricSeriesRequest(name: "mesh_actions_total", minutes: 1), frames: try frames(), windowMinutes: 30)
        #expect(merged.series.count == 1 && merged.series[0].points.map(\.value) == [22, 22, 22])
        #expect(merged.series[0].labels.isEmpty)
    }

    @Test func seriesOfAHistogramHasPercentilesAndAGaugeItsValue() throws {
        let latency = CollectorQueries.series(
            MetricSeriesRequest(name: "mesh_action_duration", service: "mesh-agent-worker", instance: "a", minutes: 1), frames: try frames(),
            windowMinutes: 30)
        let points = try #require(latency.series.first?.points)
        #expect(latency.series.first?.unit == "ns")
        #expect(points.count == 3 && points.allSatisfy { $0.count == 11 && $0.p99 >= 1_000_000 && $0.p99 <= 1_031_250 })
        let memory = CollectorQueries.series(
            MetricSeriesRequest(name: "mesh_process_resident_memory_bytes", minutes: 1, groupBy: "instance"), frames: try frames(), windowMinutes: 30)
        #expect(memory.series.count == 2 && memory.series.allSatisfy { $0.kind == "gauge" && $0.points.count == 4 && $0.points[0].value == 100 })
    }

    @Test func badSeriesRequestsAreRefused() throws {
        let frames = try frames()
        func code(_ request: MetricSeriesRequest) -> String? { CollectorQueries.series(request, frames: frames, windowMinutes: 30).error?.code }
        #expect(code(MetricSeriesRequest(name: "9bad")) == "invalid_argument")
        #expect(code(MetricSeriesRequest(name: "mesh_actions_total", service: "Bad Service")) == "invalid_argument")
        #expect(code(MetricSeriesRequest(name: "mesh_actions_total", minutes: 31)) == "invalid_argument")
        #expect(code(MetricSeriesRequest(name: "mesh_actions_total", groupBy: "node")) == "invalid_argument")
        #expect(code(MetricSeriesRequest(name: "mesh_actions_total", labels: ["bad-label": "x"])) == "invalid_argument")
        #expect(code(MetricSeriesRequest(name: "mesh_no_such_metric")) == "not_found")
        #expect(CollectorQueries.series(MetricSeriesRequest(name: "mesh_actions_total"), frames: [], windowMinutes: 30).error?.code == "unavailable")
    }

    @Test func summaryFromMergedCountersAndHistograms() throws {
        let summary = CollectorQueries.summary(MetricsSummaryRequest(minutes: 1), frames: try frames(), windowMinutes: 30, firingAlerts: 2)
        #expect(summary.error == nil)
        #expect(summary.actionsPerSecond == 22)
        #expect(abs(summary.actionErrorRate - 2.0 / 22) < 1e-9)
        #expect(summary.actionP99Ns >= 1_000_000 && summary.actionP99Ns <= 1_031_250)
        #expect(summary.firingAlerts == 2)
        #expect(summary.actionRate.map(\.value) == [22, 22, 22])
        let a = try #require(summary.processes.first { $0.instance == "a" })
        #expect(a.cpuPercent == 50 && a.residentBytes == 100 && a.memoryPercent == 25 && a.up)
        #expect(summary.processes.first { $0.instance == "b" }?.cpuPercent == 0)
        #expect(CollectorQueries.summary(MetricsSummaryRequest(minutes: 99), frames: try frames(), windowMinutes: 30, firingAlerts: 0).error?.code
            == "invalid_argument")
    }
}
