import MeshCore

/// How series are grouped when an expression is evaluated.
public enum Grouping: String, Sendable, Hashable, CaseIterable {
    /// One value for the whole cluster.
    case cluster
    /// One value per service.
    case service
    /// One value per process `(service, instance)`.
    case instance
    /// One value per series (process and the metric's own labels).
    case series
}

/// Which series an expression reads: a metric name, label matchers (equality), and
/// optionally one service or instance.
public struct Selector: Sendable, Hashable {
    /// The metric's name.
    public var metric: String
    /// Labels the series must have, with these values.
    public var labels: [String: String]
    /// Only this service (nil: every service).
    public var service: String?
    /// Only this instance (nil: every instance).
    public var instance: String?

    public init(metric: String, labels: [String: String] = [:], service: String? = nil, instance: String? = nil) {
        self.metric = metric
        self.labels = labels
        self.service = service
        self.instance = instance
    }

    func matches(_ instance: InstanceKey) -> Bool {
        (service == nil || service == instance.service) && (self.instance == nil || self.instance == instance.instance)
    }

    func matches(_ key: SeriesKey) -> Bool { key.name == metric && key.matches(labels) }
}

/// The identity of one evaluated value: which service, instance and labels it stands for
/// (nil / empty where the grouping merged them).
public struct GroupKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The service, unless merged (cluster grouping).
    public var service: String?
    /// The instance, unless merged (cluster and service grouping).
    public var instance: String?
    /// The series' own labels (series grouping only).
    public var labels: [SeriesKey.LabelPair]

    public init(service: String? = nil, instance: String? = nil, labels: [SeriesKey.LabelPair] = []) {
        self.service = service
        self.instance = instance
        self.labels = labels
    }

    static func of(_ instance: InstanceKey, _ series: SeriesKey, by grouping: Grouping) -> GroupKey {
        switch grouping {
        case .cluster: GroupKey()
        case .service: GroupKey(service: instance.service)
        case .instance: GroupKey(service: instance.service, instance: instance.instance)
        case .series: GroupKey(service: instance.service, instance: instance.instance, labels: series.labels)
        }
    }

    /// The key as labels: `service`, `instance` and the series' own labels, where set.
    public var labelDictionary: [String: String] {
        var result = Dictionary(labels.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
        if let service { result["service"] = service }
        if let instance { result["instance"] = instance }
        return result
    }

    public var description: String {
        let parts = labelDictionary.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return parts.isEmpty ? "cluster" : parts.joined(separator: ",")
    }

    public static func < (lhs: GroupKey, rhs: GroupKey) -> Bool { lhs.description < rhs.description }
}

/// Pure arithmetic over ``Frame``s: rates of counters, gauge values and windowed
/// histograms (merged bucket-wise, never averaged percentiles), grouped.
public enum FrameMath {
    /// The frame to compare `frames.last` with for a window: the newest frame at least
    /// `windowMs` older, else the oldest one; nil with fewer than two frames.
    public static func baseline(_ frames: [Frame], windowMs: Int64) -> Frame? {
        window(frames, windowMs: windowMs)?.then
    }

    /// The baseline of a window (see ``baseline(_:windowMs:)``) and the frames between it
    /// and the newest one (where instances the baseline lacks are looked up).
    public static func window(_ frames: [Frame], windowMs: Int64) -> (then: Frame, later: ArraySlice<Frame>)? {
        guard frames.count >= 2, let latest = frames.last else { return nil }
        let cutoff = latest.atUnixMs - windowMs
        let index = frames.dropLast().lastIndex { $0.atUnixMs <= cutoff } ?? 0
        return (frames[index], frames[(index + 1)..<(frames.count - 1)])
    }

    /// Where an instance's window starts: its view in `then`; else zero at `then` when its
    /// process started after `then`; else its first view in `later` (it was first heard
    /// during the window, so only what happened since counts); nil when it has none.
    static func start(of instance: InstanceKey, _ view: InstanceView, then: Frame, later: ArraySlice<Frame>) -> (view: InstanceView?, atUnixMs: Int64)? {
        if let earlier = then.instances[instance] { return (earlier, then.atUnixMs) }
        if view.processStartedAtUnixMs >= then.atUnixMs { return (nil, then.atUnixMs) }
        if let first = later.first(where: { $0.instances[instance] != nil }) { return (first.instances[instance], first.atUnixMs) }
        return nil
    }

    /// Per-second increase of the selected counters between `then` and `now`, summed per
    /// group. Each instance's window starts as ``start(of:_:then:later:)`` says; a series
    /// missing at the start counts from zero; a value that went down (a gauge such as CPU
    /// seconds after a restart) counts from zero. Selected gauges are treated the same way
    /// (for cumulative gauges such as `mesh_process_cpu_seconds`).
    public static func rates(
        _ selector: Selector, now: Frame, then: Frame, later: ArraySlice<Frame> = [], by grouping: Grouping
    ) -> [GroupKey: Double] {
        var result: [GroupKey: Double] = [:]
        for (instance, view) in now.instances where selector.matches(instance) {
            guard let start = start(of: instance, view, then: then, later: later) else { continue }
            let seconds = Double(now.atUnixMs - start.atUnixMs) / 1000
            guard seconds > 0 else { continue }
            for (key, value) in view.counters where selector.matches(key) {
                let before = start.view?.counters[key] ?? 0
                let delta = value >= before ? value - before : value
                result[GroupKey.of(instance, key, by: grouping), default: 0] += Double(delta) / seconds
            }
            for (key, value) in view.gauges where selector.matches(key) {
                let before = start.view?.gauges[key] ?? 0
                let delta = value >= before ? value - before : value
                result[GroupKey.of(instance, key, by: grouping), default: 0] += delta / seconds
            }
        }
        return result
    }

    /// The selected gauges' latest values, summed per group.
    public static func gauges(_ selector: Selector, frame: Frame, by grouping: Grouping) -> [GroupKey: Double] {
        var result: [GroupKey: Double] = [:]
        for (instance, view) in frame.instances where selector.matches(instance) {
            for (key, value) in view.gauges where selector.matches(key) {
                result[GroupKey.of(instance, key, by: grouping), default: 0] += value
            }
        }
        return result
    }

    /// The observations of the selected histograms between `then` and `now` (everything
    /// when `then` is nil), merged per group (bucket-wise; differing precisions fold to the
    /// smaller). Each instance's window starts as ``start(of:_:then:later:)`` says. Series
    /// of another unit than the group's first are left out.
    public static func histograms(
        _ selector: Selector, now: Frame, then: Frame?, later: ArraySlice<Frame> = [], by grouping: Grouping
    ) -> [GroupKey: UnitHistogram] {
        var result: [GroupKey: UnitHistogram] = [:]
        for (instance, view) in now.instances where selector.matches(instance) {
            var earlier: InstanceView?
            if let then {
                guard let start = start(of: instance, view, then: then, later: later) else { continue }
                earlier = start.view
            }
            for (key, value) in view.histograms where selector.matches(key) {
                var window = value.histogram
                if let before = earlier?.histograms[key], before.unit == value.unit {
                    window = value.histogram.subtracting(before.histogram)
                }
                result.merge(GroupKey.of(instance, key, by: grouping), UnitHistogram(unit: value.unit, histogram: window))
            }
        }
        return result
    }

    /// Which kind the metric `name` has in `frame` (the first found).
    public static func kind(of name: String, in frame: Frame) -> MetricKind? {
        for view in frame.instances.values {
            if view.counters.keys.contains(where: { $0.name == name }) { return .counter }
            if view.histograms.keys.contains(where: { $0.name == name }) { return .histogram }
            if view.gauges.keys.contains(where: { $0.name == name }) { return .gauge }
        }
        return nil
    }
}

/// The kinds of metric a snapshot carries.
public enum MetricKind: String, Sendable, Hashable {
    /// Monotonic total (rates are computed from it).
    case counter
    /// A value that goes up and down.
    case gauge
    /// A mergeable distribution.
    case histogram
}

extension [GroupKey: UnitHistogram] {
    mutating func merge(_ key: GroupKey, _ value: UnitHistogram) {
        if let existing = self[key] {
            guard existing.unit == value.unit else { return }
            self[key] = UnitHistogram(unit: value.unit, histogram: existing.histogram.merged(with: value.histogram))
        } else {
            self[key] = value
        }
    }
}
