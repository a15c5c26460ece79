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
    public var metric: String
    public var labels: [String: String]
    public var service: String?
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
    public var service: String?
    public var instance: String?
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
        guard frames.count >= 2, let latest = frames.last else { return nil }
        let cutoff = latest.atUnixMs - windowMs
        return frames.dropLast().last { $0.atUnixMs <= cutoff } ?? frames.first
    }

    /// Per-second increase of the selected counters between `then` and `now`, summed per
    /// group. A series counts only when present in both frames; a value that went down (a
    /// gauge such as CPU seconds after a restart) counts from zero. Selected gauges are
    /// treated the same way (e.g. `mesh_process_cpu_seconds`).
    public static func rates(_ selector: Selector, now: Frame, then: Frame, by grouping: Grouping) -> [GroupKey: Double] {
        let seconds = Double(now.atUnixMs - then.atUnixMs) / 1000
        guard seconds > 0 else { return [:] }
        var result: [GroupKey: Double] = [:]
        for (instance, view) in now.instances where selector.matches(instance) {
            guard let earlier = then.instances[instance] else { continue }
            for (key, value) in view.counters where selector.matches(key) {
                guard let before = earlier.counters[key] else { continue }
                let delta = value >= before ? value - before : value
                result[GroupKey.of(instance, key, by: grouping), default: 0] += Double(delta) / seconds
            }
            for (key, value) in view.gauges where selector.matches(key) {
                guard let before = earlier.gauges[key] else { continue }
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

    /// The observations of the selected histograms between `then` and `now`, merged per
    /// group (bucket-wise; differing precisions fold to the smaller). Series of another unit
    /// than the group's first are left out.
    public static func histograms(_ selector: Selector, now: Frame, then: Frame?, by grouping: Grouping) -> [GroupKey: UnitHistogram] {
        var result: [GroupKey: UnitHistogram] = [:]
        for (instance, view) in now.instances where selector.matches(instance) {
            let earlier = then?.instances[instance]
            for (key, value) in view.histograms where selector.matches(key) {
                var window = value.histogram
                // A series absent from the baseline (a new instance or a new label set)
                // counts whole: its observations are all recent.
                if then != nil, let before = earlier?.histograms[key], before.unit == value.unit {
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
    case counter, gauge, histogram
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
