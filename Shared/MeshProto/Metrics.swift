import CMeshProto

/// Bucket layout of a histogram (`mesh.v1.HistogramScheme`); unknown values are kept as
/// `.unrecognized`. The layout of `.logLinear` is specified in `Shared/Proto/metrics.proto`
/// and implemented (record, merge, percentiles) by MeshCore's `LogLinearHistogram`.
public enum HistogramScheme: RawRepresentable, Sendable, Hashable {
    /// Not set by the writer (wire value 0); the histogram's buckets cannot be interpreted.
    case unspecified
    /// HDR-style log-linear buckets over non-negative integers.
    case logLinear
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .unspecified
        case 1: self = .logLinear
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .unspecified: 0
        case .logLinear: 1
        case .unrecognized(let value): value
        }
    }
}

extension HistogramScheme: WireEnum {}

/// The whole metric state of one process (`mesh.v1.MetricSnapshot`), published every few
/// seconds on `mesh.metrics.<service>.<instance>`.
///
/// Counters and histograms are cumulative since process start; a collector detects a
/// restart by a new `processStartedAtUnixMs`. Histograms merge exactly (see `Histogram`).
///
/// ```swift
/// let latency = MetricSnapshot.Histogram(name: "mesh_action_duration_ns", unit: "ns",
///     precisionBits: 5, firstBucket: 501, counts: [3, 0, 0, 0, 0, 0, 1], count: 4, sum: 3_610_000,
///     min: 880_000, max: 970_000)
/// let snapshot = MetricSnapshot(service: "agent-worker", instance: "w-1", histograms: [latency])
/// ```
public struct MetricSnapshot: Sendable, Hashable {
    /// A monotonic counter (`mesh.v1.MetricSnapshot.Counter`).
    public struct Counter: Sendable, Hashable {
        /// Schema version (field 1); see `SchemaVersion`.
        public var version: UInt32
        /// Prometheus form `mesh_<thing>_<unit>`, e.g. `mesh_actions_total`.
        public var name: String
        public var labels: [String: String]
        public var value: UInt64

        public init(version: UInt32 = SchemaVersion.current, name: String = "", labels: [String: String] = [:], value: UInt64 = 0) {
            self.version = version
            self.name = name
            self.labels = labels
            self.value = value
        }
    }

    /// A value that goes up and down (`mesh.v1.MetricSnapshot.Gauge`).
    public struct Gauge: Sendable, Hashable {
        /// Schema version (field 1); see `SchemaVersion`.
        public var version: UInt32
        public var name: String
        public var labels: [String: String]
        public var value: Double

        public init(version: UInt32 = SchemaVersion.current, name: String = "", labels: [String: String] = [:], value: Double = 0) {
            self.version = version
            self.name = name
            self.labels = labels
            self.value = value
        }
    }

    /// A mergeable distribution of non-negative integer observations
    /// (`mesh.v1.MetricSnapshot.Histogram`).
    ///
    /// With `scheme == .logLinear`, `counts[k]` is the number of observations in bucket
    /// `firstBucket + k` of the log-linear layout at `precisionBits` (`metrics.proto`
    /// specifies it; MeshCore's `LogLinearHistogram` implements it). Two histograms with
    /// the same `unit` merge exactly: counts add index by index, `count` and `sum` add,
    /// `min`/`max` take the extremes; differing precisions merge at the smaller one.
    public struct Histogram: Sendable, Hashable {
        /// Schema version (field 1); see `SchemaVersion`.
        public var version: UInt32
        public var name: String
        public var labels: [String: String]
        /// Unit of every value, bound and sum: `ns`, `us`, `ms`, `bytes`, ...
        public var unit: String
        public var scheme: HistogramScheme
        /// `p` of the log-linear scheme, 0...16 (relative bucket width ≤ 2^-p).
        public var precisionBits: UInt32
        /// Index of `counts[0]`; leading and trailing empty buckets are left out.
        public var firstBucket: UInt32
        /// Observations per bucket, from `firstBucket` on.
        public var counts: [UInt64]
        /// Number of observations (the sum of `counts`).
        public var count: UInt64
        /// Sum of all observed values in `unit` (wraps modulo 2^64).
        public var sum: UInt64
        /// Smallest observed value; 0 when `count` is 0.
        public var min: UInt64
        /// Largest observed value; 0 when `count` is 0.
        public var max: UInt64

        public init(
            version: UInt32 = SchemaVersion.current, name: String = "", labels: [String: String] = [:],
            unit: String = "", scheme: HistogramScheme = .logLinear,
            precisionBits: UInt32 = 5, firstBucket: UInt32 = 0,
            counts: [UInt64] = [], count: UInt64 = 0, sum: UInt64 = 0, min: UInt64 = 0, max: UInt64 = 0
        ) {
            self.version = version
            self.name = name
            self.labels = labels
            self.unit = unit
            self.scheme = scheme
            self.precisionBits = precisionBits
            self.firstBucket = firstBucket
            self.counts = counts
            self.count = count
            self.sum = sum
            self.min = min
            self.max = max
        }
    }

    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Service name, e.g. `agent-worker`.
    public var service: String
    public var instance: String
    public var timestampUnixMs: Int64
    public var processStartedAtUnixMs: Int64
    public var counters: [Counter]
    public var gauges: [Gauge]
    public var histograms: [Histogram]

    public init(
        version: UInt32 = SchemaVersion.current, service: String = "", instance: String = "",
        timestampUnixMs: Int64 = 0, processStartedAtUnixMs: Int64 = 0, counters: [Counter] = [],
        gauges: [Gauge] = [], histograms: [Histogram] = []
    ) {
        self.version = version
        self.service = service
        self.instance = instance
        self.timestampUnixMs = timestampUnixMs
        self.processStartedAtUnixMs = processStartedAtUnixMs
        self.counters = counters
        self.gauges = gauges
        self.histograms = histograms
    }
}

// MARK: - Wire

extension MetricSnapshot: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.MetricSnapshot"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension MetricSnapshot: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_snapshot__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricSnapshot>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.service, service)
        arena.set(&c.pointee.instance, instance)
        c.pointee.timestamp_unix_ms = timestampUnixMs
        c.pointee.process_started_at_unix_ms = processStartedAtUnixMs
        arena.set(&c.pointee.n_counters, &c.pointee.counters, counters)
        arena.set(&c.pointee.n_gauges, &c.pointee.gauges, gauges)
        arena.set(&c.pointee.n_histograms, &c.pointee.histograms, histograms)
    }

    init(c: UnsafePointer<Mesh__V1__MetricSnapshot>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            service: try WireRead.string(c.service, "MetricSnapshot.service"),
            instance: try WireRead.string(c.instance, "MetricSnapshot.instance"),
            timestampUnixMs: c.timestamp_unix_ms,
            processStartedAtUnixMs: c.process_started_at_unix_ms,
            counters: try WireRead.messages(c.n_counters, c.counters),
            gauges: try WireRead.messages(c.n_gauges, c.gauges),
            histograms: try WireRead.messages(c.n_histograms, c.histograms))
    }
}

extension MetricSnapshot.Counter: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.MetricSnapshot.Counter"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension MetricSnapshot.Counter: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_snapshot__counter__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricSnapshot__Counter>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.name, name)
        arena.set(&c.pointee.n_labels, &c.pointee.labels, labels)
        c.pointee.value = value
    }

    init(c: UnsafePointer<Mesh__V1__MetricSnapshot__Counter>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, name: try WireRead.string(c.name, "Counter.name"),
            labels: try WireRead.map(c.n_labels, c.labels, "Counter.labels"), value: c.value)
    }
}

extension MetricSnapshot.Gauge: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.MetricSnapshot.Gauge"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension MetricSnapshot.Gauge: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_snapshot__gauge__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricSnapshot__Gauge>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.name, name)
        arena.set(&c.pointee.n_labels, &c.pointee.labels, labels)
        c.pointee.value = value
    }

    init(c: UnsafePointer<Mesh__V1__MetricSnapshot__Gauge>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, name: try WireRead.string(c.name, "Gauge.name"),
            labels: try WireRead.map(c.n_labels, c.labels, "Gauge.labels"), value: c.value)
    }
}

extension MetricSnapshot.Histogram: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.MetricSnapshot.Histogram"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension MetricSnapshot.Histogram: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_snapshot__histogram__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricSnapshot__Histogram>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.name, name)
        arena.set(&c.pointee.n_labels, &c.pointee.labels, labels)
        arena.set(&c.pointee.unit, unit)
        c.pointee.scheme = scheme.c()
        c.pointee.precision_bits = precisionBits
        c.pointee.first_bucket = firstBucket
        arena.set(&c.pointee.n_counts, &c.pointee.counts, counts)
        c.pointee.count = count
        c.pointee.sum = sum
        c.pointee.min = min
        c.pointee.max = max
    }

    init(c: UnsafePointer<Mesh__V1__MetricSnapshot__Histogram>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            name: try WireRead.string(c.name, "Histogram.name"),
            labels: try WireRead.map(c.n_labels, c.labels, "Histogram.labels"),
            unit: try WireRead.string(c.unit, "Histogram.unit"),
            scheme: HistogramScheme(c: c.scheme),
            precisionBits: c.precision_bits,
            firstBucket: c.first_bucket,
            counts: WireRead.scalars(c.n_counts, c.counts),
            count: c.count, sum: c.sum, min: c.min, max: c.max)
    }
}

extension Mesh__V1__MetricSnapshot__Counter__LabelsEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> {
        mesh__v1__metric_snapshot__counter__labels_entry__descriptor_ref()
    }
}

extension Mesh__V1__MetricSnapshot__Gauge__LabelsEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> {
        mesh__v1__metric_snapshot__gauge__labels_entry__descriptor_ref()
    }
}

extension Mesh__V1__MetricSnapshot__Histogram__LabelsEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> {
        mesh__v1__metric_snapshot__histogram__labels_entry__descriptor_ref()
    }
}
