import CMeshProto

/// Asks the collector for one metric's series over the last minutes (`mesh.v1.MetricSeriesRequest`, on `<prefix>.collector.series`).
public struct MetricSeriesRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Metric name, e.g. `mesh_actions_total`.
    public var name: String
    /// Only this service (empty: every service).
    public var service: String
    /// Only this instance (empty: every instance).
    public var instance: String
    /// How far back, 1...the collector's window (0: 15).
    public var minutes: UInt32
    /// `cluster` (default), `service`, `instance` or `series`.
    public var groupBy: String
    /// Equality matchers on the metric's own labels.
    public var labels: [String: String]

    public init(version: UInt32 = SchemaVersion.current, name: String = "", service: String = "", instance: String = "", minutes: UInt32 = 0, groupBy: String = "", labels: [String: String] = [:]) {
        self.version = version
        self.name = name
        self.service = service
        self.instance = instance
        self.minutes = minutes
        self.groupBy = groupBy
        self.labels = labels
    }
}

/// One point of a series (`mesh.v1.MetricPoint`): a counter's rate per second over the step, a gauge's value, or a histogram's percentiles over the step (in its unit) and their count.
public struct MetricPoint: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// End of the step.
    public var timestampUnixMs: Int64
    /// Rate (counters) or value (gauges).
    public var value: Double
    /// Histograms: median of the step's observations.
    public var p50: Double
    /// Histograms: 90th percentile.
    public var p90: Double
    /// Histograms: 99th percentile.
    public var p99: Double
    /// Histograms: observations in the step.
    public var count: UInt64

    public init(version: UInt32 = SchemaVersion.current, timestampUnixMs: Int64 = 0, value: Double = 0, p50: Double = 0, p90: Double = 0, p99: Double = 0, count: UInt64 = 0) {
        self.version = version
        self.timestampUnixMs = timestampUnixMs
        self.value = value
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.count = count
    }
}

/// One metric's series for one group (`mesh.v1.MetricSeries`).
public struct MetricSeries: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Metric name.
    public var name: String
    /// `counter`, `gauge` or `histogram`.
    public var kind: String
    /// Histogram unit, `per_second` for counters, empty for gauges.
    public var unit: String
    /// `service`, `instance` and labels, as far as the grouping keeps them.
    public var labels: [String: String]
    /// Oldest first.
    public var points: [MetricPoint]

    public init(version: UInt32 = SchemaVersion.current, name: String = "", kind: String = "", unit: String = "", labels: [String: String] = [:], points: [MetricPoint] = []) {
        self.version = version
        self.name = name
        self.kind = kind
        self.unit = unit
        self.labels = labels
        self.points = points
    }
}

/// The series asked for, or an error (`mesh.v1.MetricSeriesReply`).
public struct MetricSeriesReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// One per group.
    public var series: [MetricSeries]
    /// Set when the request failed.
    public var error: ErrorReply?
    /// Step between points, in ms.
    public var stepMs: UInt32

    public init(version: UInt32 = SchemaVersion.current, series: [MetricSeries] = [], error: ErrorReply? = nil, stepMs: UInt32 = 0) {
        self.version = version
        self.series = series
        self.error = error
        self.stepMs = stepMs
    }
}

/// Asks for the dashboard summary (`mesh.v1.MetricsSummaryRequest`, on `<prefix>.collector.summary`).
public struct MetricsSummaryRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Window of rates and percentiles (0: 1).
    public var minutes: UInt32

    public init(version: UInt32 = SchemaVersion.current, minutes: UInt32 = 0) {
        self.version = version
        self.minutes = minutes
    }
}

/// One process in the summary (`mesh.v1.ProcessSummary`).
public struct ProcessSummary: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Service name.
    public var service: String
    /// Instance id.
    public var instance: String
    /// Sending snapshots.
    public var up: Bool
    /// CPU over the window, percent of one core.
    public var cpuPercent: Double
    /// Resident memory.
    public var residentBytes: UInt64
    /// Resident memory / the process's memory limit, percent (0 when unknown).
    public var memoryPercent: Double
    /// Restarts the collector observed.
    public var restarts: UInt32
    /// When its latest snapshot arrived.
    public var lastSeenUnixMs: Int64

    public init(version: UInt32 = SchemaVersion.current, service: String = "", instance: String = "", up: Bool = false, cpuPercent: Double = 0, residentBytes: UInt64 = 0, memoryPercent: Double = 0, restarts: UInt32 = 0, lastSeenUnixMs: Int64 = 0) {
        self.version = version
        self.service = service
        self.instance = instance
        self.up = up
        self.cpuPercent = cpuPercent
        self.residentBytes = residentBytes
        self.memoryPercent = memoryPercent
        self.restarts = restarts
        self.lastSeenUnixMs = lastSeenUnixMs
    }
}

/// The dashboard summary (`mesh.v1.MetricsSummaryReply`): cluster throughput, error rates, latency percentiles from merged histograms, and every process's CPU and memory.
public struct MetricsSummaryReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// When it was computed.
    public var generatedAtUnixMs: Int64
    /// Window of rates and percentiles.
    public var windowSeconds: UInt32
    /// Actions answered per second.
    public var actionsPerSecond: Double
    /// Share of actions that failed, 0...1.
    public var actionErrorRate: Double
    /// Task outcomes per second.
    public var tasksPerSecond: Double
    /// Share of task outcomes that are failures, 0...1.
    public var taskFailureRate: Double
    /// Action latency median, ns.
    public var actionP50Ns: UInt64
    /// Action latency p90, ns.
    public var actionP90Ns: UInt64
    /// Action latency p99, ns.
    public var actionP99Ns: UInt64
    /// Task run time median, ns.
    public var taskP50Ns: UInt64
    /// Task run time p99, ns.
    public var taskP99Ns: UInt64
    /// Every process, by service and instance.
    public var processes: [ProcessSummary]
    /// Alerts firing now.
    public var firingAlerts: UInt32
    /// Set when the request failed.
    public var error: ErrorReply?
    /// Actions per second, one point per step over the window.
    public var actionRate: [MetricPoint]

    public init(version: UInt32 = SchemaVersion.current, generatedAtUnixMs: Int64 = 0, windowSeconds: UInt32 = 0, actionsPerSecond: Double = 0, actionErrorRate: Double = 0, tasksPerSecond: Double = 0, taskFailureRate: Double = 0, actionP50Ns: UInt64 = 0, actionP90Ns: UInt64 = 0, actionP99Ns: UInt64 = 0, taskP50Ns: UInt64 = 0, taskP99Ns: UInt64 = 0, processes: [ProcessSummary] = [], firingAlerts: UInt32 = 0, error: ErrorReply? = nil, actionRate: [MetricPoint] = []) {
        self.version = version
        self.generatedAtUnixMs = generatedAtUnixMs
        self.windowSeconds = windowSeconds
        self.actionsPerSecond = actionsPerSecond
        self.actionErrorRate = actionErrorRate
        self.tasksPerSecond = tasksPerSecond
        self.taskFailureRate = taskFailureRate
        self.actionP50Ns = actionP50Ns
        self.actionP90Ns = actionP90Ns
        self.actionP99Ns = actionP99Ns
        self.taskP50Ns = taskP50Ns
        self.taskP99Ns = taskP99Ns
        self.processes = processes
        self.firingAlerts = firingAlerts
        self.error = error
        self.actionRate = actionRate
    }
}

/// Asks for the active alerts (`mesh.v1.ListAlertsRequest`, on `<prefix>.alerts.list`).
public struct ListAlertsRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Also the recently resolved ones.
    public var includeResolved: Bool

    public init(version: UInt32 = SchemaVersion.current, includeResolved: Bool = false) {
        self.version = version
        self.includeResolved = includeResolved
    }
}

/// One alert (`mesh.v1.AlertInfo`).
public struct AlertInfo: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Rule name.
    public var rule: String
    /// `info`, `warning` or `critical`.
    public var severity: String
    /// The rule's one-line summary.
    public var summary: String
    /// `pending`, `firing` or `resolved`.
    public var state: String
    /// What it is about: `service`, `instance`, labels (empty: the cluster).
    public var labels: [String: String]
    /// Latest value.
    public var value: Double
    /// The rule's threshold.
    public var threshold: Double
    /// `>`, `>=`, `<` or `<=`.
    public var comparison: String
    /// When the condition started to hold.
    public var activeSinceUnixMs: Int64
    /// When it fired (0: not yet).
    public var firedAtUnixMs: Int64
    /// When it resolved (0: not resolved).
    public var resolvedAtUnixMs: Int64

    public init(version: UInt32 = SchemaVersion.current, rule: String = "", severity: String = "", summary: String = "", state: String = "", labels: [String: String] = [:], value: Double = 0, threshold: Double = 0, comparison: String = "", activeSinceUnixMs: Int64 = 0, firedAtUnixMs: Int64 = 0, resolvedAtUnixMs: Int64 = 0) {
        self.version = version
        self.rule = rule
        self.severity = severity
        self.summary = summary
        self.state = state
        self.labels = labels
        self.value = value
        self.threshold = threshold
        self.comparison = comparison
        self.activeSinceUnixMs = activeSinceUnixMs
        self.firedAtUnixMs = firedAtUnixMs
        self.resolvedAtUnixMs = resolvedAtUnixMs
    }
}

/// The alerts, or an error (`mesh.v1.ListAlertsReply`).
public struct ListAlertsReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Firing first, then pending, then resolved (newest first).
    public var alerts: [AlertInfo]
    /// Set when the request failed.
    public var error: ErrorReply?

    public init(version: UInt32 = SchemaVersion.current, alerts: [AlertInfo] = [], error: ErrorReply? = nil) {
        self.version = version
        self.alerts = alerts
        self.error = error
    }
}

// MARK: - Wire

extension MetricSeriesRequest: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.MetricSeriesRequest"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_series_request__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricSeriesRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.name, name)
        arena.set(&c.pointee.service, service)
        arena.set(&c.pointee.instance, instance)
        c.pointee.minutes = minutes
        arena.set(&c.pointee.group_by, groupBy)
        arena.set(&c.pointee.n_labels, &c.pointee.labels, labels)
    }

    init(c: UnsafePointer<Mesh__V1__MetricSeriesRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            name: try WireRead.string(c.name, "MetricSeriesRequest.name"),
            service: try WireRead.string(c.service, "MetricSeriesRequest.service"),
            instance: try WireRead.string(c.instance, "MetricSeriesRequest.instance"),
            minutes: c.minutes,
            groupBy: try WireRead.string(c.group_by, "MetricSeriesRequest.group_by"),
            labels: try WireRead.map(c.n_labels, c.labels, "MetricSeriesRequest.labels"))
    }
}

extension MetricPoint: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.MetricPoint"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_point__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricPoint>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.timestamp_unix_ms = timestampUnixMs
        c.pointee.value = value
        c.pointee.p50 = p50
        c.pointee.p90 = p90
        c.pointee.p99 = p99
        c.pointee.count = count
    }

    init(c: UnsafePointer<Mesh__V1__MetricPoint>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            timestampUnixMs: c.timestamp_unix_ms,
            value: c.value,
            p50: c.p50,
            p90: c.p90,
            p99: c.p99,
            count: c.count)
    }
}

extension MetricSeries: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.MetricSeries"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_series__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricSeries>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.name, name)
        arena.set(&c.pointee.kind, kind)
        arena.set(&c.pointee.unit, unit)
        arena.set(&c.pointee.n_labels, &c.pointee.labels, labels)
        arena.set(&c.pointee.n_points, &c.pointee.points, points)
    }

    init(c: UnsafePointer<Mesh__V1__MetricSeries>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            name: try WireRead.string(c.name, "MetricSeries.name"),
            kind: try WireRead.string(c.kind, "MetricSeries.kind"),
            unit: try WireRead.string(c.unit, "MetricSeries.unit"),
            labels: try WireRead.map(c.n_labels, c.labels, "MetricSeries.labels"),
            points: try WireRead.messages(c.n_points, c.points))
    }
}

extension MetricSeriesReply: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.MetricSeriesReply"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_series_reply__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricSeriesReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.n_series, &c.pointee.series, series)
        if let error { c.pointee.error = arena.message(error) }
        c.pointee.step_ms = stepMs
    }

    init(c: UnsafePointer<Mesh__V1__MetricSeriesReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            series: try WireRead.messages(c.n_series, c.series),
            error: try WireRead.message(c.error),
            stepMs: c.step_ms)
    }
}

extension MetricsSummaryRequest: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.MetricsSummaryRequest"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metrics_summary_request__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricsSummaryRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.minutes = minutes
    }

    init(c: UnsafePointer<Mesh__V1__MetricsSummaryRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            minutes: c.minutes)
    }
}

extension ProcessSummary: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.ProcessSummary"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__process_summary__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ProcessSummary>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.service, service)
        arena.set(&c.pointee.instance, instance)
        c.pointee.up = up ? 1 : 0
        c.pointee.cpu_percent = cpuPercent
        c.pointee.resident_bytes = residentBytes
        c.pointee.memory_percent = memoryPercent
        c.pointee.restarts = restarts
        c.pointee.last_seen_unix_ms = lastSeenUnixMs
    }

    init(c: UnsafePointer<Mesh__V1__ProcessSummary>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            service: try WireRead.string(c.service, "ProcessSummary.service"),
            instance: try WireRead.string(c.instance, "ProcessSummary.instance"),
            up: c.up != 0,
            cpuPercent: c.cpu_percent,
            residentBytes: c.resident_bytes,
            memoryPercent: c.memory_percent,
            restarts: c.restarts,
            lastSeenUnixMs: c.last_seen_unix_ms)
    }
}

extension MetricsSummaryReply: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.MetricsSummaryReply"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metrics_summary_reply__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__MetricsSummaryReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.generated_at_unix_ms = generatedAtUnixMs
        c.pointee.window_seconds = windowSeconds
        c.pointee.actions_per_second = actionsPerSecond
        c.pointee.action_error_rate = actionErrorRate
        c.pointee.tasks_per_second = tasksPerSecond
        c.pointee.task_failure_rate = taskFailureRate
        c.pointee.action_p50_ns = actionP50Ns
        c.pointee.action_p90_ns = actionP90Ns
        c.pointee.action_p99_ns = actionP99Ns
        c.pointee.task_p50_ns = taskP50Ns
        c.pointee.task_p99_ns = taskP99Ns
        arena.set(&c.pointee.n_processes, &c.pointee.processes, processes)
        c.pointee.firing_alerts = firingAlerts
        if let error { c.pointee.error = arena.message(error) }
        arena.set(&c.pointee.n_action_rate, &c.pointee.action_rate, actionRate)
    }

    init(c: UnsafePointer<Mesh__V1__MetricsSummaryReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            generatedAtUnixMs: c.generated_at_unix_ms,
            windowSeconds: c.window_seconds,
            actionsPerSecond: c.actions_per_second,
            actionErrorRate: c.action_error_rate,
            tasksPerSecond: c.tasks_per_second,
            taskFailureRate: c.task_failure_rate,
            actionP50Ns: c.action_p50_ns,
            actionP90Ns: c.action_p90_ns,
            actionP99Ns: c.action_p99_ns,
            taskP50Ns: c.task_p50_ns,
            taskP99Ns: c.task_p99_ns,
            processes: try WireRead.messages(c.n_processes, c.processes),
            firingAlerts: c.firing_alerts,
            error: try WireRead.message(c.error),
            actionRate: try WireRead.messages(c.n_action_rate, c.action_rate))
    }
}

extension ListAlertsRequest: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.ListAlertsRequest"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__list_alerts_request__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ListAlertsRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.include_resolved = includeResolved ? 1 : 0
    }

    init(c: UnsafePointer<Mesh__V1__ListAlertsRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            includeResolved: c.include_resolved != 0)
    }
}

extension AlertInfo: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.AlertInfo"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__alert_info__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__AlertInfo>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.rule, rule)
        arena.set(&c.pointee.severity, severity)
        arena.set(&c.pointee.summary, summary)
        arena.set(&c.pointee.state, state)
        arena.set(&c.pointee.n_labels, &c.pointee.labels, labels)
        c.pointee.value = value
        c.pointee.threshold = threshold
        arena.set(&c.pointee.comparison, comparison)
        c.pointee.active_since_unix_ms = activeSinceUnixMs
        c.pointee.fired_at_unix_ms = firedAtUnixMs
        c.pointee.resolved_at_unix_ms = resolvedAtUnixMs
    }

    init(c: UnsafePointer<Mesh__V1__AlertInfo>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            rule: try WireRead.string(c.rule, "AlertInfo.rule"),
            severity: try WireRead.string(c.severity, "AlertInfo.severity"),
            summary: try WireRead.string(c.summary, "AlertInfo.summary"),
            state: try WireRead.string(c.state, "AlertInfo.state"),
            labels: try WireRead.map(c.n_labels, c.labels, "AlertInfo.labels"),
            value: c.value,
            threshold: c.threshold,
            comparison: try WireRead.string(c.comparison, "AlertInfo.comparison"),
            activeSinceUnixMs: c.active_since_unix_ms,
            firedAtUnixMs: c.fired_at_unix_ms,
            resolvedAtUnixMs: c.resolved_at_unix_ms)
    }
}

extension ListAlertsReply: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.ListAlertsReply"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__list_alerts_reply__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ListAlertsReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.n_alerts, &c.pointee.alerts, alerts)
        if let error { c.pointee.error = arena.message(error) }
    }

    init(c: UnsafePointer<Mesh__V1__ListAlertsReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            alerts: try WireRead.messages(c.n_alerts, c.alerts),
            error: try WireRead.message(c.error))
    }
}

extension Mesh__V1__MetricSeriesRequest__LabelsEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_series_request__labels_entry__descriptor_ref() }
}

extension Mesh__V1__MetricSeries__LabelsEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__metric_series__labels_entry__descriptor_ref() }
}

extension Mesh__V1__AlertInfo__LabelsEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__alert_info__labels_entry__descriptor_ref() }
}
