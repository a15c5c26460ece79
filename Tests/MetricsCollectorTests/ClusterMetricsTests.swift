import MeshCore
import MeshProto
@testable import MetricsCollectorService
import Testing

/// Builds snapshots the way processes publish them.
enum Snap {
    static func histogram(_ name: String, _ values: [UInt64], precision: Int = 5, labels: [String: String] = [:]) -> MetricSnapshot.Histogram {
        var h = LogLinearHistogram(precisionBits: precision)
        for value in values { h.record(value) }
        let sparse = h.sparseCounts
        return MetricSnapshot.Histogram(
            name: name, labels: labels, unit: "ns", scheme: .logLinear, precisionBits: UInt32(precision),
            firstBucket: UInt32(sparse.firstBucket), counts: Array(sparse.counts), count: h.count, sum: h.sum, min: h.min, max: h.max)
    }

    static func make(
        _ service: String = "mesh-agent-worker", _ instance: String, at: Int64, started: Int64 = 1,
        counters: [(String, [String: String], UInt64)] = [], gauges: [(String, [String: String], Double)] = [],
        histograms: [MetricSnapshot.Histogram] = []
    ) -> (MetricSnapshot, String) {
        let snapshot = MetricSnapshot(
            service: service, instance: instance, timestampUnixMs: at, processStartedAtUnixMs: started,
            counters: counters.map { MetricSnapshot.Counter(name: $0.0, labels: $0.1, value: $0.2) },
            gauges: gauges.map { MetricSnapshot.Gauge(name: $0.0, labels: $0.1, value: $0.2) }, histograms: histograms)
        return (snapshot, "mesh.metrics.\(service).\(instance)")
    }
}

func model(stale: Int64 = 10_000, forget: Int64 = 60_000, frames: Int = 100) -> ClusterMetrics {
    ClusterMetrics(configuration: .init(staleAfterMs: stale, forgetAfterMs: forget, maxFrames: frames))
}

@Suite struct HistogramMergeTests {
    @Test func mergeAcrossInstancesIsBucketWiseNotAveraged() throws {
        // Instance a: 99 fast observations; instance b: 1 slow one. The merged p99 is fast,
        // the merged max slow; averaging the two p99s would say ~5 ms.
        var cluster = model()
        let a = Snap.make("mesh-agent-worker", "a", at: 1000, histograms: [Snap.histogram("mesh_action_duration", Array(repeating: 100_000, count: 99))])
        let b = Snap.make("mesh-agent-worker", "b", at: 1000, histograms: [Snap.histogram("mesh_action_duration", [10_000_000])])
        try cluster.ingest(a.0, subject: a.1, prefix: "mesh", now: 1000)
        try cluster.ingest(b.0, subject: b.1, prefix: "mesh", now: 1000)
        let frame = cluster.takeFrame(now: 1000)
        let merged = FrameMath.histograms(Selector(metric: "mesh_action_duration"), now: frame, then: nil, by: .cluster)[GroupKey()]
        let histogram = try #require(merged).histogram
        #expect(histogram.count == 100)
        #expect(histogram.max == 10_000_000)
        let p99 = histogram.percentile(0.99)
        #expect(p99 >= 100_000 && p99 <= 103_125)  // within one bucket (p = 5) of 100 µs
        #expect(histogram.percentile(1.0) == 10_000_000)
        let perInstance = FrameMath.histograms(Selector(metric: "mesh_action_duration"), now: frame, then: nil, by: .instance)
        #expect(perInstance.count == 2)
    }

    @Test func differingPrecisionsFoldToTheSmaller() throws {
        var cluster = model()
        let fine = Snap.make("mesh-agent-worker", "a", at: 1000, histograms: [Snap.histogram("h", [1000, 2000, 3000], precision: 7)])
        let coarse = Snap.make("mesh-agent-worker", "b", at: 1000, histograms: [Snap.histogram("h", [1000], precision: 3)])
        try cluster.ingest(fine.0, subject: fine.1, prefix: "mesh", now: 1000)
        try cluster.ingest(coarse.0, subject: coarse.1, prefix: "mesh", now: 1000)
        let merged = try #require(
            FrameMath.histograms(Selector(metric: "h"), now: cluster.takeFrame(now: 1000), then: nil, by: .cluster)[GroupKey()]
        ).histogram
        #expect(merged.precisionBits == 3)
        #expect(merged.count == 4)
        #expect(merged.sum == 7000)
        // Every observation lands in the p = 3 bucket holding its value.
        for value: UInt64 in [1000, 2000, 3000] {
            #expect(merged.counts[LogLinearHistogram.bucketIndex(value, precisionBits: 3)] >= 1)
        }
        #expect(merged.counts[LogLinearHistogram.bucketIndex(1000, precisionBits: 3)] == 2)
    }

    @Test func subtractingGivesTheWindowsObservations() throws {
        var earlier = LogLinearHistogram()
        for _ in 0..<10 { earlier.record(1_000) }
        var later = earlier
        for _ in 0..<5 { later.record(1_000_000) }
        let window = later.subtracting(earlier)
        #expect(window.count == 5)
        #expect(window.sum == 5_000_000)
        #expect(window.percentile(0.5) >= 1_000_000 && window.percentile(0.5) <= 1_031_250)
        #expect(later.subtracting(later).count == 0)
    }

    @Test func percentileMath() {
        var h = LogLinearHistogram()
        for value in 1...1000 { h.record(UInt64(value) * 1000) }
        // Rank ceil(q × n): p50 is the 500th value (500 000), p99 the 990th, within 1/32.
        for (q, exact) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = Double(h.percentile(q))
            #expect(got >= exact && got <= exact * (1 + 1.0 / 32), "q=\(q) got \(got)")
        }
        // The lowest rank answers the upper bound of the smallest value's bucket.
        #expect(h.percentile(0) >= 1000 && h.percentile(0) <= 1031)
        #expect(h.percentile(1) == 1_000_000)
        #expect(LogLinearHistogram().percentile(0.99) == 0)
    }
}

@Suite struct IngestTests {
    @Test func restartKeepsCountersMonotonic() throws {
        var cluster = model()
        let first = Snap.make("mesh-registry", "r1", at: 1000, started: 100, counters: [("mesh_registry_requests_total", ["verb": "get"], 50)])
        #expect(try cluster.ingest(first.0, subject: first.1, prefix: "mesh", now: 1000) == .applied)
        cluster.takeFrame(now: 1000)
        // The process restarts: its counter starts again from 0 under a new start time.
        let second = Snap.make("mesh-registry", "r1", at: 3000, started: 2500, counters: [("mesh_registry_requests_total", ["verb": "get"], 10)])
        #expect(try cluster.ingest(second.0, subject: second.1, prefix: "mesh", now: 3000) == .restarted)
        let frame = cluster.takeFrame(now: 3000)
        let key = SeriesKey(name: "mesh_registry_requests_total", labels: ["verb": "get"])
        let instance = InstanceKey(service: "mesh-registry", instance: "r1")
        #expect(frame.instances[instance]?.counters[key] == 60)
        #expect(frame.instances[instance]?.restarts == 1)
        // The rate over the restart is the 10 new requests in 2 s, not negative.
        let rates = FrameMath.rates(Selector(metric: "mesh_registry_requests_total"), now: frame, then: cluster.frames[0], by: .cluster)
        #expect(rates[GroupKey()] == 5)
        // A late snapshot of the old life is ignored.
        let late = Snap.make("mesh-registry", "r1", at: 2000, started: 100, counters: [("mesh_registry_requests_total", ["verb": "get"], 55)])
        #expect(try cluster.ingest(late.0, subject: late.1, prefix: "mesh", now: 3100) == .stale)
        #expect(cluster.view(now: 3100)[instance]?.counters[key] == 60)
    }

    @Test func seriesAppearingInTheWindowCountFromZero() throws {
        var cluster = model()
        let quiet = Snap.make("mesh-agent-worker", "w", at: 0, started: -5000)
        try cluster.ingest(quiet.0, subject: quiet.1, prefix: "mesh", now: 0)
        let then = cluster.takeFrame(now: 0)
        // The worker's first actions create the counter; a process seen for the first time
        // that started long before the baseline does not count (its total predates it), one
        // that started after it does.
        let busy = Snap.make("mesh-agent-worker", "w", at: 2000, started: -5000, counters: [("mesh_actions_total", ["outcome": "ok"], 8)])
        let old = Snap.make("mesh-agent-worker", "old", at: 2000, started: -9000, counters: [("mesh_actions_total", ["outcome": "ok"], 1000)])
        let fresh = Snap.make("mesh-agent-worker", "fresh", at: 2000, started: 500, counters: [("mesh_actions_total", ["outcome": "ok"], 2)])
        for snap in [busy, old, fresh] { try cluster.ingest(snap.0, subject: snap.1, prefix: "mesh", now: 2000) }
        let now = cluster.takeFrame(now: 2000)
        #expect(FrameMath.rates(Selector(metric: "mesh_actions_total"), now: now, then: then, by: .cluster)[GroupKey()] == 5)
        #expect(RawPoint.between(then, now).filter { $0.name == "mesh_actions_total" }.map(\.count).sorted() == [2, 8])
        // Once a frame holds it, the old process counts from that first view on.
        let oldLater = Snap.make("mesh-agent-worker", "old", at: 4000, started: -9000, counters: [("mesh_actions_total", ["outcome": "ok"], 1010)])
        try cluster.ingest(oldLater.0, subject: oldLater.1, prefix: "mesh", now: 4000)
        let latest = cluster.takeFrame(now: 4000)
        let rates = FrameMath.rates(Selector(metric: "mesh_actions_total"), now: latest, then: then, later: [now], by: .instance)
        #expect(rates[GroupKey(service: "mesh-agent-worker", instance: "old")] == 5)  // 10 in the 2 s since first seen
        #expect(rates[GroupKey(service: "mesh-agent-worker", instance: "w")] == 2)  // 8 in 4 s
        let window = try #require(FrameMath.window(cluster.frames, windowMs: 4000))
        #expect(window.then.atUnixMs == 0 && window.later.map(\.atUnixMs) == [2000])
    }

    @Test func histogramsAreContinuousAcrossRestarts() throws {
        var cluster = model()
        let first = Snap.make("mesh-agent-worker", "w", at: 1000, started: 1, histograms: [Snap.histogram("h", [10, 20])])
        let second = Snap.make("mesh-agent-worker", "w", at: 2000, started: 1500, histograms: [Snap.histogram("h", [30])])
        try cluster.ingest(first.0, subject: first.1, prefix: "mesh", now: 1000)
        try cluster.ingest(second.0, subject: second.1, prefix: "mesh", now: 2000)
        let h = try #require(cluster.view(now: 2000)[InstanceKey(service: "mesh-agent-worker", instance: "w")]?.histograms[SeriesKey(name: "h", labels: [:])])
        #expect(h.histogram.count == 3)
        #expect(h.histogram.sum == 60)
    }

    @Test func badSnapshotsAreRefusedAndChangeNothing() {
        var cluster = model()
        let (good, subject) = Snap.make("mesh-gateway", "g", at: 1, counters: [("mesh_x_total", [:], 1)])
        // Subject and identity disagree.
        #expect(throws: SnapshotRejection.identity) { try cluster.ingest(good, subject: "mesh.metrics.mesh-gateway.other", prefix: "mesh", now: 1) }
        var bad = good
        bad.instance = "Bad Instance"
        #expect(throws: SnapshotRejection.identity) { try cluster.ingest(bad, subject: "mesh.metrics.mesh-gateway.Bad Instance", prefix: "mesh", now: 1) }
        bad = good
        bad.counters = [MetricSnapshot.Counter(name: "9starts_with_digit", value: 1)]
        #expect(throws: SnapshotRejection.badName) { try cluster.ingest(bad, subject: subject, prefix: "mesh", now: 1) }
        bad = good
        bad.counters = [MetricSnapshot.Counter(name: "ok_total", labels: ["instance": "spoof"], value: 1)]
        #expect(throws: SnapshotRejection.badName) { try cluster.ingest(bad, subject: subject, prefix: "mesh", now: 1) }
        bad = good
        bad.gauges = [MetricSnapshot.Gauge(name: "g", value: .nan)]
        #expect(throws: SnapshotRejection.badValue) { try cluster.ingest(bad, subject: subject, prefix: "mesh", now: 1) }
        bad = good
        var histogram = Snap.histogram("h", [1, 2, 3])
        histogram.count = 99  // disagrees with its buckets
        bad.histograms = [histogram]
        #expect(throws: SnapshotRejection.badHistogram) { try cluster.ingest(bad, subject: subject, prefix: "mesh", now: 1) }
        histogram = Snap.histogram("h", [1])
        histogram.firstBucket = 1_920  // past the last bucket at p = 5
        bad.histograms = [histogram]
        #expect(throws: SnapshotRejection.badHistogram) { try cluster.ingest(bad, subject: subject, prefix: "mesh", now: 1) }
        // A histogram whose dense form would be huge is refused before it is allocated.
        histogram = Snap.histogram("h", [1], precision: 16)
        histogram.firstBucket = 3_000_000
        bad.histograms = [histogram]
        #expect(throws: SnapshotRejection.tooLarge) { try cluster.ingest(bad, subject: subject, prefix: "mesh", now: 1) }
        bad = good
        bad.counters = (0...4096).map { MetricSnapshot.Counter(name: "c\($0)", value: 1) }
        #expect(throws: SnapshotRejection.tooLarge) { try cluster.ingest(bad, subject: subject, prefix: "mesh", now: 1) }
        #expect(cluster.instances.isEmpty)
        #expect(throws: Never.self) { try cluster.ingest(good, subject: subject, prefix: "mesh", now: 1) }
        #expect(cluster.instances.count == 1)
    }

    @Test func silentInstancesGoDownThenAreForgottenWithoutLosingTotals() throws {
        var cluster = model(stale: 5_000, forget: 20_000)
        let a = Snap.make("mesh-agent-worker", "a", at: 0, counters: [("mesh_actions_total", ["outcome": "ok"], 7)])
        try cluster.ingest(a.0, subject: a.1, prefix: "mesh", now: 0)
        let key = InstanceKey(service: "mesh-agent-worker", instance: "a")
        let up = SeriesKey(name: ClusterMetrics.instanceUpMetric, labels: [:])
        #expect(cluster.view(now: 4_000)[key]?.gauges[up] == 1)
        #expect(cluster.view(now: 6_000)[key]?.gauges[up] == 0)
        #expect(cluster.forget(now: 19_000).isEmpty)
        #expect(cluster.forget(now: 21_000) == [key])
        #expect(cluster.instances.isEmpty)
        // The cluster counter keeps the forgotten instance's total.
        let text = String(decoding: PrometheusExposition.render(cluster, now: 21_000), as: UTF8.self)
        #expect(text.contains(#"mesh_cluster_actions_total{service="mesh-agent-worker",outcome="ok"} 7"#))
    }

    @Test func framesAreBounded() throws {
        var cluster = model(frames: 3)
        for step in 0..<10 { cluster.takeFrame(now: Int64(step) * 1000) }
        #expect(cluster.frames.count == 3)
        #expect(cluster.frames.first?.atUnixMs == 7000)
    }
}

@Suite struct ExpositionTests {
    @Test func textFormatHasLabelsHistogramsAndClusterFamilies() throws {
        var cluster = model()
        let a = Snap.make(
            "mesh-agent-worker", "a", at: 1000, counters: [("mesh_actions_total", ["outcome": "ok"], 3)],
            gauges: [("mesh_agents_hosted", [:], 2)], histograms: [Snap.histogram("mesh_action_duration", [200_000, 3_000_000])])
        let b = Snap.make(
            "mesh-agent-worker", "b", at: 1000, counters: [("mesh_actions_total", ["outcome": "ok"], 4)],
            gauges: [("mesh_agents_hosted", [:], 5)], histograms: [Snap.histogram("mesh_action_duration", [200_000])])
        try cluster.ingest(a.0, subject: a.1, prefix: "mesh", now: 1000)
        try cluster.ingest(b.0, subject: b.1, prefix: "mesh", now: 1000)
        let text = String(decoding: PrometheusExposition.render(cluster, now: 1000), as: UTF8.self)
        #expect(text.contains(#"mesh_actions_total{instance="a",service="mesh-agent-worker",outcome="ok"} 3"#))
        #expect(text.contains(#"mesh_cluster_actions_total{service="mesh-agent-worker",outcome="ok"} 7"#))
        #expect(text.contains(#"mesh_cluster_agents_hosted{service="mesh-agent-worker"} 7"#))
        #expect(text.contains("# TYPE mesh_action_duration histogram"))
        #expect(text.contains(#"mesh_action_duration_bucket{instance="a",service="mesh-agent-worker",le="0.00025"} 1"#))
        #expect(text.contains(#"mesh_action_duration_bucket{instance="a",service="mesh-agent-worker",le="0.005"} 2"#))
        #expect(text.contains(#"mesh_cluster_action_duration_bucket{service="mesh-agent-worker",le="0.00025"} 2"#))
        #expect(text.contains(#"mesh_cluster_action_duration_count{service="mesh-agent-worker"} 3"#))
        #expect(text.contains(#"mesh_instance_up{instance="b",service="mesh-agent-worker"} 1"#))
        // Each family is declared once and its samples follow its TYPE line.
        let typeLines = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
        #expect(Set(typeLines).count == typeLines.count)
        var current = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                current = String(line.split(separator: " ")[2])
            } else {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                #expect(name == current || name.hasPrefix(current + "_"), "\(name) outside family \(current)")
            }
        }
    }

    @Test func histogramsOfOtherUnitsUsePowersOfFour() {
        var h = LogLinearHistogram()
        for value: UInt64 in [3, 100, 5000] { h.record(value) }
        let lines = PrometheusExposition.histogramLines(
            "mesh_payload_bytes", ["service": "s"], SeriesKey(name: "mesh_payload_bytes", labels: [:]), UnitHistogram(unit: "bytes", histogram: h))
        #expect(lines.contains(#"mesh_payload_bytes_bucket{service="s",le="4"} 1"#))
        #expect(lines.contains(#"mesh_payload_bytes_bucket{service="s",le="256"} 2"#))
        #expect(lines.contains(#"mesh_payload_bytes_bucket{service="s",le="16384"} 3"#))
        #expect(lines.contains(#"mesh_payload_bytes_bucket{service="s",le="+Inf"} 3"#))
        #expect(lines.contains(#"mesh_payload_bytes_sum{service="s"} 5103"#))
    }

    @Test func rawPointsOfHistogramsAreTheIntervalsObservations() throws {
        var cluster = model()
        let first = Snap.make("mesh-agent-worker", "w", at: 0, histograms: [Snap.histogram("h", Array(repeating: 1_000, count: 10))])
        try cluster.ingest(first.0, subject: first.1, prefix: "mesh", now: 0)
        let then = cluster.takeFrame(now: 0)
        let second = Snap.make(
            "mesh-agent-worker", "w", at: 1000,
            histograms: [Snap.histogram("h", Array(repeating: 1_000, count: 10) + Array(repeating: 2_000_000, count: 4))])
        try cluster.ingest(second.0, subject: second.1, prefix: "mesh", now: 1000)
        let points = RawPoint.between(then, cluster.takeFrame(now: 1000)).filter { $0.name == "h" }
        let point = try #require(points.first)
        #expect(points.count == 1 && point.kind == .histogram)
        #expect(point.count == 4 && point.sum == 8_000_000 && point.value == 2_000_000)
        #expect((point.p50 ?? 0) >= 2_000_000 && (point.p99 ?? 0) <= 2_062_500)
        #expect(RollupWriter.row(point).count == 12)
    }

    @Test func labelValuesAreEscaped() {
        #expect(PrometheusExposition.escape("a\"b\\c\nd") == #"a\"b\\c\nd"#)
        #expect(PrometheusExposition.number(3) == "3")
        #expect(PrometheusExposition.number(0.25) == "0.25")
        #expect(PrometheusExposition.number(.infinity) == "+Inf")
    }
}
