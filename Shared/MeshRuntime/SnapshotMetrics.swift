public import CoreMetrics
public import MeshCore
import Synchronization

/// A swift-metrics backend that keeps every metric in a form that can be published as a
/// `MetricSnapshot`: counters as totals, meters and plain recorders as gauges, timers and
/// aggregating recorders as mergeable ``LogLinearHistogram``s (timers in nanoseconds).
///
/// It runs beside the Prometheus backend (a `MultiplexMetricsHandler`), so one
/// `Counter(label:)` feeds both the process's `/metrics` and the cluster snapshot.
public final class SnapshotMetricsFactory: MetricsFactory, Sendable {
    private let registry = Mutex<[MetricKey: any AnyObject & Sendable]>([:])

    public init() {}

    struct MetricKey: Hashable {
        let kind: Kind
        let name: String
        let labels: [String]
        enum Kind { case counter, gauge, histogram }
    }

    private func lookup<Handler: AnyObject & Sendable>(_ kind: MetricKey.Kind, _ label: String, _ dimensions: [(String, String)], _ make: () -> Handler) -> Handler {
        let labels = dimensions.sorted { $0.0 < $1.0 }.flatMap { [$0.0, $0.1] }
        let key = MetricKey(kind: kind, name: label, labels: labels)
        return registry.withLock { registry in
            if let existing = registry[key] as? Handler { return existing }
            let created = make()
            registry[key] = created
            return created
        }
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        lookup(.counter, label, dimensions) { SnapshotCounter(label, dimensions) }
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        lookup(.counter, label, dimensions) { SnapshotCounter(label, dimensions) }
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate { return lookup(.histogram, label, dimensions) { SnapshotHistogram(label, dimensions, unit: "") } }
        return lookup(.gauge, label, dimensions) { SnapshotGauge(label, dimensions) }
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        lookup(.gauge, label, dimensions) { SnapshotGauge(label, dimensions) }
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        lookup(.histogram, label, dimensions) { SnapshotHistogram(label, dimensions, unit: "ns") }
    }

    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}

    /// The current value of every metric.
    public func snapshot() -> MetricValues {
        let handlers = registry.withLock { Array($0.values) }
        var values = MetricValues()
        for handler in handlers {
            switch handler {
            case let counter as SnapshotCounter: values.counters.append(counter.read())
            case let gauge as SnapshotGauge: values.gauges.append(gauge.read())
            case let histogram as SnapshotHistogram: values.histograms.append(histogram.read())
            default: continue
            }
        }
        return values
    }
}

/// A point-in-time copy of a process's metrics.
public struct MetricValues: Sendable {
    public struct Counter: Sendable {
        public var name: String
        public var labels: [String: String]
        public var value: UInt64
    }

    public struct Gauge: Sendable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public struct Histogram: Sendable {
        public var name: String
        public var labels: [String: String]
        public var unit: String
        public var histogram: LogLinearHistogram
    }

    public var counters: [Counter] = []
    public var gauges: [Gauge] = []
    public var histograms: [Histogram] = []

    public init() {}
}

private func labelDictionary(_ dimensions: [(String, String)]) -> [String: String] {
    Dictionary(dimensions, uniquingKeysWith: { _, last in last })
}

final class SnapshotCounter: CounterHandler, FloatingPointCounterHandler, Sendable {
    private let name: String
    private let labels: [String: String]
    private let total = Atomic<UInt64>(0)
    private let fraction = Mutex<Double>(0)

    init(_ name: String, _ dimensions: [(String, String)]) {
        self.name = name
        self.labels = labelDictionary(dimensions)
    }

    func increment(by amount: Int64) {
        guard amount > 0 else { return }
        total.wrappingAdd(UInt64(amount), ordering: .relaxed)
    }

    func increment(by amount: Double) {
        guard amount > 0, amount.isFinite else { return }
        let whole = fraction.withLock { fraction -> UInt64 in
            fraction += amount
            let whole = fraction.rounded(.down)
            fraction -= whole
            return UInt64(whole)
        }
        if whole > 0 { total.wrappingAdd(whole, ordering: .relaxed) }
    }

    func reset() { total.store(0, ordering: .relaxed) }

    func read() -> MetricValues.Counter { .init(name: name, labels: labels, value: total.load(ordering: .relaxed)) }
}

final class SnapshotGauge: RecorderHandler, MeterHandler, Sendable {
    private let name: String
    private let labels: [String: String]
    private let value = Mutex<Double>(0)

    init(_ name: String, _ dimensions: [(String, String)]) {
        self.name = name
        self.labels = labelDictionary(dimensions)
    }

    func record(_ value: Int64) { self.value.withLock { $0 = Double(value) } }
    func record(_ value: Double) { self.value.withLock { $0 = value } }
    func set(_ value: Int64) { record(value) }
    func set(_ value: Double) { record(value) }
    func increment(by amount: Double) { value.withLock { $0 += amount } }
    func decrement(by amount: Double) { value.withLock { $0 -= amount } }

    func read() -> MetricValues.Gauge { .init(name: name, labels: labels, value: value.withLock { $0 }) }
}

final class SnapshotHistogram: RecorderHandler, TimerHandler, Sendable {
    private let name: String
    private let labels: [String: String]
    private let unit: String
    private let histogram = Mutex(LogLinearHistogram())

    init(_ name: String, _ dimensions: [(String, String)], unit: String) {
        self.name = name
        self.labels = labelDictionary(dimensions)
        self.unit = unit
    }

    func record(_ value: Int64) { histogram.withLock { $0.record(UInt64(max(0, value))) } }
    func record(_ value: Double) { record(Int64(value.isFinite ? max(0, min(value, 9.2e18)).rounded() : 0)) }
    func recordNanoseconds(_ duration: Int64) { record(duration) }

    func read() -> MetricValues.Histogram {
        .init(name: name, labels: labels, unit: unit, histogram: histogram.withLock { $0 })
    }
}
