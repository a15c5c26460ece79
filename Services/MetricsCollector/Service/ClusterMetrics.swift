import MeshCore
public import MeshProto

/// The metric state of one process, as the collector keeps it: counters and histograms
/// made continuous across restarts of the process, gauges as last reported.
///
/// Snapshots carry counters and histograms cumulative since the process started. When a
/// snapshot arrives with a later `processStartedAtUnixMs` (the process restarted under the
/// same instance id) — or a counter goes down within one process life — the values of the
/// previous life are folded into a base, so ``counters`` and ``histograms`` never go down
/// and a rate over the restart is not negative.
public struct InstanceMetrics: Sendable {
    public let key: InstanceKey
    /// Start of the current process life (writer's clock).
    public private(set) var processStartedAtUnixMs: Int64
    /// Timestamp of the latest snapshot applied (writer's clock).
    public private(set) var lastSnapshotUnixMs: Int64
    /// When the latest snapshot arrived (collector's clock).
    public private(set) var lastSeenUnixMs: Int64
    /// Restarts observed since the collector first heard of the instance.
    public private(set) var restarts: Int = 0
    /// Gauges of the latest snapshot.
    public private(set) var gauges: [SeriesKey: Double] = [:]

    private var rawCounters: [SeriesKey: UInt64] = [:]
    private var counterBase: [SeriesKey: UInt64] = [:]
    private var rawHistograms: [SeriesKey: UnitHistogram] = [:]
    private var histogramBase: [SeriesKey: UnitHistogram] = [:]

    init(key: InstanceKey, startedAt: Int64, seenAt: Int64) {
        self.key = key
        self.processStartedAtUnixMs = startedAt
        self.lastSnapshotUnixMs = 0
        self.lastSeenUnixMs = seenAt
    }

    /// Counter totals, continuous across restarts.
    public var counters: [SeriesKey: UInt64] {
        var totals = counterBase
        for (key, value) in rawCounters { totals[key, default: 0] &+= value }
        return totals
    }

    /// Histograms, continuous across restarts (earlier lives merged in).
    public var histograms: [SeriesKey: UnitHistogram] {
        var totals = histogramBase
        for (key, value) in rawHistograms {
            if let base = totals[key] {
                totals[key] = UnitHistogram(unit: value.unit, histogram: base.histogram.merged(with: value.histogram))
            } else {
                totals[key] = value
            }
        }
        return totals
    }

    /// What applying a snapshot did.
    public enum Applied: Equatable, Sendable {
        case applied
        /// The snapshot is the first of a new process life.
        case restarted
        /// Older than what was applied already (reordered or from a previous life): ignored.
        case stale
    }

    /// Applies a validated snapshot received at `now` (collector's clock).
    mutating func apply(_ snapshot: ValidatedSnapshot, now: Int64) -> Applied {
        var outcome = Applied.applied
        if snapshot.processStartedAtUnixMs < processStartedAtUnixMs { return .stale }
        if snapshot.processStartedAtUnixMs > processStartedAtUnixMs {
            foldLife()
            processStartedAtUnixMs = snapshot.processStartedAtUnixMs
            restarts += 1
            outcome = .restarted
        } else if snapshot.timestampUnixMs < lastSnapshotUnixMs {
            return .stale
        }
        for (key, value) in snapshot.counters {
            if let previous = rawCounters[key], value < previous { counterBase[key, default: 0] &+= previous }
            rawCounters[key] = value
        }
        for (key, value) in snapshot.histograms {
            if let previous = rawHistograms[key], value.histogram.count < previous.histogram.count || previous.unit != value.unit {
                fold(key, previous)
            }
            rawHistograms[key] = value
        }
        gauges = snapshot.gauges
        lastSnapshotUnixMs = snapshot.timestampUnixMs
        lastSeenUnixMs = now
        return outcome
    }

    private mutating func foldLife() {
        for (key, value) in rawCounters { counterBase[key, default: 0] &+= value }
        rawCounters = [:]
        for (key, value) in rawHistograms { fold(key, value) }
        rawHistograms = [:]
        gauges = [:]
    }

    private mutating func fold(_ key: SeriesKey, _ value: UnitHistogram) {
        if let base = histogramBase[key], base.unit == value.unit {
            histogramBase[key] = UnitHistogram(unit: value.unit, histogram: base.histogram.merged(with: value.histogram))
        } else {
            histogramBase[key] = value
        }
    }
}

/// A snapshot that passed validation, in the collector's keyed form.
struct ValidatedSnapshot: Sendable {
    var instance: InstanceKey
    var timestampUnixMs: Int64
    var processStartedAtUnixMs: Int64
    var counters: [SeriesKey: UInt64] = [:]
    var gauges: [SeriesKey: Double] = [:]
    var histograms: [SeriesKey: UnitHistogram] = [:]
}

/// Why a snapshot was refused; the reason label of `mesh_collector_snapshots_rejected_total`.
public enum SnapshotRejection: String, Error, Sendable, CaseIterable {
    /// The bytes are not a `MetricSnapshot`.
    case malformed
    /// Service or instance is not a legal token, or does not match the subject.
    case identity
    /// More series or labels than the limits allow.
    case tooLarge = "too_large"
    /// A metric or label name is not a legal Prometheus name, or a label is reserved.
    case badName = "bad_name"
    /// A histogram whose scheme, precision or buckets cannot be interpreted.
    case badHistogram = "bad_histogram"
    /// A gauge that is not a finite number.
    case badValue = "bad_value"
    /// The collector tracks its maximum number of instances already.
    case tooManyInstances = "too_many_instances"
}

/// Limits on what one snapshot may hold.
public struct SnapshotLimits: Sendable, Hashable {
    /// Series (counters + gauges + histograms) per snapshot.
    public var maxSeries = 4096
    /// Labels per series.
    public var maxLabels = 16
    /// Length of a metric name, label name or label value.
    public var maxNameLength = MetricName.maxLength
    /// Buckets of one histogram in dense form (its highest bucket index + 1): a log-linear
    /// histogram at the default precision (p = 5) has at most 1 920.
    public var maxHistogramBuckets = 65_536
    /// Buckets of all histograms of a snapshot in dense form.
    public var maxSnapshotBuckets = 1 << 20

    public init() {}
}

enum SnapshotValidation {
    /// Labels the collector adds itself; a snapshot may not set them.
    static let reservedLabels: Set<String> = ["service", "instance", "le", "quantile"]

    /// Checks `snapshot` received on `subject` (`<prefix>.metrics.<service>.<instance>`).
    static func validate(_ snapshot: MetricSnapshot, subject: String, prefix: String, limits: SnapshotLimits) throws(SnapshotRejection) -> ValidatedSnapshot {
        guard Identifier.isValid(snapshot.service), Identifier.isValid(snapshot.instance),
            subject == Subjects.metrics(prefix: prefix, service: snapshot.service, instance: snapshot.instance)
        else { throw .identity }
        guard snapshot.counters.count + snapshot.gauges.count + snapshot.histograms.count <= limits.maxSeries else { throw .tooLarge }
        var result = ValidatedSnapshot(
            instance: InstanceKey(service: snapshot.service, instance: snapshot.instance), timestampUnixMs: snapshot.timestampUnixMs,
            processStartedAtUnixMs: snapshot.processStartedAtUnixMs)
        func key(_ name: String, _ labels: [String: String]) throws(SnapshotRejection) -> SeriesKey {
            guard labels.count <= limits.maxLabels else { throw .tooLarge }
            guard MetricName.isValid(name, limit: limits.maxNameLength) else { throw .badName }
            for (label, value) in labels {
                guard isLabelName(label, limit: limits.maxNameLength), !reservedLabels.contains(label) else { throw .badName }
                guard value.utf8.count <= limits.maxNameLength else { throw .tooLarge }
            }
            return SeriesKey(name: name, labels: labels)
        }
        for counter in snapshot.counters { result.counters[try key(counter.name, counter.labels)] = counter.value }
        for gauge in snapshot.gauges {
            guard gauge.value.isFinite else { throw .badValue }
            result.gauges[try key(gauge.name, gauge.labels)] = gauge.value
        }
        var buckets = 0
        for histogram in snapshot.histograms {
            let seriesKey = try key(histogram.name, histogram.labels)
            guard histogram.scheme == .logLinear, histogram.precisionBits <= 16, histogram.unit.utf8.count <= 16 else { throw .badHistogram }
            // Bounded before the dense form is allocated.
            let dense = Int(histogram.firstBucket) + histogram.counts.count
            buckets += dense
            guard dense <= limits.maxHistogramBuckets, buckets <= limits.maxSnapshotBuckets else { throw .tooLarge }
            let decoded: LogLinearHistogram
            do {
                decoded = try LogLinearHistogram(
                    precisionBits: Int(histogram.precisionBits), firstBucket: Int(histogram.firstBucket), counts: histogram.counts,
                    sum: histogram.sum, min: histogram.min, max: histogram.max)
            } catch {
                throw .badHistogram
            }
            guard decoded.count == histogram.count else { throw .badHistogram }
            result.histograms[seriesKey] = UnitHistogram(unit: histogram.unit, histogram: decoded)
        }
        return result
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
    static func isLabelName(_ name: String, limit: Int) -> Bool {
        guard MetricName.isValid(name, limit: limit), !name.contains(":"), !name.hasPrefix("__") else { return false }
        return true
    }
}

/// A point-in-time view of one instance inside a ``Frame``.
public struct InstanceView: Sendable {
    public var counters: [SeriesKey: UInt64]
    public var gauges: [SeriesKey: Double]
    public var histograms: [SeriesKey: UnitHistogram]
    /// The instance sent a snapshot within the staleness window.
    public var up: Bool
    /// Restarts observed so far.
    public var restarts: Int
    /// When its latest snapshot arrived (collector's clock).
    public var lastSeenUnixMs: Int64
    /// Start of its current process life (its own clock).
    public var processStartedAtUnixMs: Int64
}

/// The whole cluster at one instant: what the collector keeps per step for the series
/// queries and the alert rules.
public struct Frame: Sendable {
    public var atUnixMs: Int64
    public var instances: [InstanceKey: InstanceView]
}

/// The collector's in-memory model of the cluster's metrics (no I/O; the service wraps it
/// in a lock): the latest state per `(service, instance)`, restart handling, forgetting of
/// silent instances, and a bounded ring of ``Frame``s, one per step.
///
/// ```swift
/// var cluster = ClusterMetrics(configuration: .init(staleAfterMs: 10_000, forgetAfterMs: 600_000, maxFrames: 180))
/// _ = try cluster.ingest(snapshot, subject: subject, prefix: "mesh", now: nowMs)
/// cluster.takeFrame(now: nowMs)        // every step
/// cluster.forget(now: nowMs)           // drops instances silent for forgetAfterMs
/// ```
public struct ClusterMetrics: Sendable {
    /// Bounds and timings of the model.
    public struct Configuration: Sendable, Hashable {
        /// An instance silent for longer is reported down (`mesh_instance_up` 0).
        public var staleAfterMs: Int64
        /// An instance silent for longer is forgotten.
        public var forgetAfterMs: Int64
        /// Frames kept (the series window divided by the step).
        public var maxFrames: Int
        /// Most instances tracked at once.
        public var maxInstances: Int = 1024
        /// Limits on one snapshot.
        public var limits = SnapshotLimits()

        public init(staleAfterMs: Int64, forgetAfterMs: Int64, maxFrames: Int) {
            self.staleAfterMs = staleAfterMs
            self.forgetAfterMs = forgetAfterMs
            self.maxFrames = maxFrames
        }
    }

    /// Name of the synthetic per-instance gauge: 1 while snapshots arrive, 0 once stale.
    public static let instanceUpMetric = "mesh_instance_up"
    /// Name of the synthetic per-instance counter of restarts the collector observed.
    public static let instanceRestartsMetric = "mesh_instance_restarts_total"

    public let configuration: Configuration
    public private(set) var instances: [InstanceKey: InstanceMetrics] = [:]
    /// Counter totals and histograms of forgotten instances, per service, so cluster-wide
    /// counters stay monotonic after an instance goes away.
    public private(set) var retiredCounters: [String: [SeriesKey: UInt64]] = [:]
    public private(set) var retiredHistograms: [String: [SeriesKey: UnitHistogram]] = [:]
    /// Frames, oldest first, at most `maxFrames`.
    public private(set) var frames: [Frame] = []

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Validates and applies one snapshot received on `subject` at `now` (collector's clock).
    /// - Returns: what happened (applied, a restart detected, or ignored as stale).
    /// - Throws: ``SnapshotRejection`` when the snapshot is refused; the model is unchanged.
    @discardableResult
    public mutating func ingest(_ snapshot: MetricSnapshot, subject: String, prefix: String, now: Int64) throws(SnapshotRejection)
        -> InstanceMetrics.Applied
    {
        let validated = try SnapshotValidation.validate(snapshot, subject: subject, prefix: prefix, limits: configuration.limits)
        if instances[validated.instance] == nil {
            guard instances.count < configuration.maxInstances else { throw .tooManyInstances }
            instances[validated.instance] = InstanceMetrics(
                key: validated.instance, startedAt: validated.processStartedAtUnixMs, seenAt: now)
        }
        return instances[validated.instance]!.apply(validated, now: now)
    }

    /// Whether `instance` sent a snapshot within the staleness window.
    public func isUp(_ instance: InstanceMetrics, now: Int64) -> Bool {
        now - instance.lastSeenUnixMs <= configuration.staleAfterMs
    }

    /// Forgets instances silent for longer than `forgetAfterMs`, keeping their counter
    /// totals and histograms in the per-service retired sums.
    /// - Returns: the instances forgotten.
    @discardableResult
    public mutating func forget(now: Int64) -> [InstanceKey] {
        let gone = instances.values.filter { now - $0.lastSeenUnixMs > configuration.forgetAfterMs }
        for instance in gone {
            let service = instance.key.service
            for (key, value) in instance.counters { retiredCounters[service, default: [:]][key, default: 0] &+= value }
            for (key, value) in instance.histograms {
                if let earlier = retiredHistograms[service]?[key], earlier.unit == value.unit {
                    retiredHistograms[service]![key] = UnitHistogram(unit: value.unit, histogram: earlier.histogram.merged(with: value.histogram))
                } else {
                    retiredHistograms[service, default: [:]][key] = value
                }
            }
            instances[instance.key] = nil
        }
        return gone.map(\.key).sorted()
    }

    /// The current view of every instance (with the synthetic `mesh_instance_up` gauge).
    public func view(now: Int64) -> [InstanceKey: InstanceView] {
        var views: [InstanceKey: InstanceView] = [:]
        for (key, instance) in instances {
            let up = isUp(instance, now: now)
            var gauges = instance.gauges
            gauges[SeriesKey(name: Self.instanceUpMetric, labels: [:])] = up ? 1 : 0
            views[key] = InstanceView(
                counters: instance.counters, gauges: gauges, histograms: instance.histograms, up: up, restarts: instance.restarts,
                lastSeenUnixMs: instance.lastSeenUnixMs, processStartedAtUnixMs: instance.processStartedAtUnixMs)
        }
        return views
    }

    /// Records a frame of the current state (drops the oldest beyond `maxFrames`).
    /// - Returns: the frame.
    @discardableResult
    public mutating func takeFrame(now: Int64) -> Frame {
        let frame = Frame(atUnixMs: now, instances: view(now: now))
        frames.append(frame)
        if frames.count > configuration.maxFrames { frames.removeFirst(frames.count - configuration.maxFrames) }
        return frame
    }
}
