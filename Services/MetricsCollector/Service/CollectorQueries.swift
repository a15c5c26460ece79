import MeshCore
import MeshClient
public import MeshProto

/// Answers the collector's NATS questions from its frames (pure: the service passes the
/// frames and the alert list in).
public enum CollectorQueries {
    /// Most series one series reply carries.
    public static let maxSeries = 200

    /// A metric's series over the last minutes.
    /// - Parameters:
    ///   - frames: the collector's frames, oldest first.
    ///   - windowMinutes: the longest window the collector keeps.
    /// - Returns: the reply; its `error` is `invalid_argument` for a bad request and
    ///   `not_found` for a metric no process reports.
    public static func series(_ request: MetricSeriesRequest, frames: [Frame], windowMinutes: Int) -> MetricSeriesReply {
        func failure(_ code: MeshError.Code, _ message: String) -> MetricSeriesReply {
            MetricSeriesReply(error: MeshError(code, message).errorReply)
        }
        guard MetricName.isValid(request.name) else { return failure(.invalidArgument, "name must be a metric name") }
        guard request.service.isEmpty || Identifier.isValid(request.service) else { return failure(.invalidArgument, "service must be a service name") }
        guard request.instance.isEmpty || Identifier.isValid(request.instance) else { return failure(.invalidArgument, "instance must be an instance id") }
        let minutes = request.minutes == 0 ? min(15, windowMinutes) : Int(request.minutes)
        guard (1...windowMinutes).contains(minutes) else { return failure(.invalidArgument, "minutes must be in 1...\(windowMinutes)") }
        let grouping: Grouping
        if request.groupBy.isEmpty {
            grouping = .cluster
        } else if let parsed = Grouping(rawValue: request.groupBy) {
            grouping = parsed
        } else {
            return failure(.invalidArgument, "group_by must be cluster, service, instance or series")
        }
        let limits = SnapshotLimits()
        guard request.labels.count <= limits.maxLabels,
            request.labels.allSatisfy({
                SnapshotValidation.isLabelName($0.key, limit: limits.maxNameLength) && $0.value.utf8.count <= limits.maxNameLength
            })
        else { return failure(.invalidArgument, "labels must be at most \(limits.maxLabels) label=value matchers") }
        guard let latest = frames.last else { return failure(.unavailable, "the collector has no data yet") }
        guard let kind = FrameMath.kind(of: request.name, in: latest) else { return failure(.notFound, "no process reports \(request.name)") }

        let selector = Selector(
            metric: request.name, labels: request.labels, service: request.service.isEmpty ? nil : request.service,
            instance: request.instance.isEmpty ? nil : request.instance)
        let start = latest.atUnixMs - Int64(minutes) * 60_000
        let firstIndex = frames.firstIndex { $0.atUnixMs >= start } ?? frames.count - 1
        var points: [GroupKey: [MetricPoint]] = [:]
        var units: [GroupKey: String] = [:]
        for index in firstIndex..<frames.count {
            let frame = frames[index]
            let previous = index > 0 ? frames[index - 1] : nil
            switch kind {
            case .gauge:
                for (key, value) in FrameMath.gauges(selector, frame: frame, by: grouping) {
                    points[key, default: []].append(MetricPoint(timestampUnixMs: frame.atUnixMs, value: value))
                }
            case .counter:
                guard let previous else { continue }
                for (key, value) in FrameMath.rates(selector, now: frame, then: previous, by: grouping) {
                    points[key, default: []].append(MetricPoint(timestampUnixMs: frame.atUnixMs, value: value))
                    units[key] = "per_second"
                }
            case .histogram:
                guard let previous else { continue }
                for (key, value) in FrameMath.histograms(selector, now: frame, then: previous, by: grouping) {
                    let h = value.histogram
                    points[key, default: []].append(
                        MetricPoint(
                            timestampUnixMs: frame.atUnixMs, value: h.mean, p50: Double(h.percentile(0.5)), p90: Double(h.percentile(0.9)),
                            p99: Double(h.percentile(0.99)), count: h.count))
                    units[key] = value.unit
                }
            }
        }
        let series = points.sorted { $0.key < $1.key }.prefix(maxSeries).map { key, values in
            MetricSeries(name: request.name, kind: kind.rawValue, unit: units[key] ?? "", labels: key.labelDictionary, points: values)
        }
        let step = frames.count >= 2 ? frames[frames.count - 1].atUnixMs - frames[frames.count - 2].atUnixMs : 0
        return MetricSeriesReply(series: Array(series), stepMs: UInt32(clamping: step))
    }

    /// The dashboard summary over the last `minutes`.
    public static func summary(_ request: MetricsSummaryRequest, frames: [Frame], windowMinutes: Int, firingAlerts: Int) -> MetricsSummaryReply {
        let minutes = request.minutes == 0 ? 1 : Int(request.minutes)
        guard (1...windowMinutes).contains(minutes) else {
            return MetricsSummaryReply(error: MeshError(.invalidArgument, "minutes must be in 1...\(windowMinutes)").errorReply)
        }
        guard let now = frames.last else {
            return MetricsSummaryReply(error: MeshError(.unavailable, "the collector has no data yet", retryAfter: .seconds(1)).errorReply)
        }
        let windowMs = Int64(minutes) * 60_000
        var reply = MetricsSummaryReply(generatedAtUnixMs: now.atUnixMs, windowSeconds: UInt32(minutes * 60), firingAlerts: UInt32(firingAlerts))
        let cluster = GroupKey()
        let window = FrameMath.window(frames, windowMs: windowMs)
        let then = window?.then
        let later = window?.later ?? []
        if let then {
            let actions = FrameMath.rates(Selector(metric: "mesh_actions_total"), now: now, then: then, later: later, by: .cluster)[cluster] ?? 0
            let actionErrors = FrameMath.rates(Selector(metric: "mesh_actions_total", labels: ["outcome": "error"]), now: now, then: then, later: later, by: .cluster)[cluster] ?? 0
            reply.actionsPerSecond = actions
            reply.actionErrorRate = actions > 0 ? actionErrors / actions : 0
            func taskRate(_ outcome: String?) -> Double {
                let labels = outcome.map { ["outcome": $0] } ?? [:]
                return FrameMath.rates(Selector(metric: "mesh_tasks_total", labels: labels), now: now, then: then, later: later, by: .cluster)[cluster] ?? 0
            }
            let outcomes = taskRate(nil) - taskRate("retrying")
            let failures = taskRate("failed") + taskRate("dead_lettered") + taskRate("expired")
            reply.tasksPerSecond = max(0, outcomes)
            reply.taskFailureRate = outcomes > 0 ? failures / outcomes : 0
        }
        if let action = FrameMath.histograms(Selector(metric: "mesh_action_duration"), now: now, then: then, later: later, by: .cluster)[cluster]?.histogram {
            reply.actionP50Ns = action.percentile(0.5)
            reply.actionP90Ns = action.percentile(0.9)
            reply.actionP99Ns = action.percentile(0.99)
        }
        if let task = FrameMath.histograms(Selector(metric: "mesh_task_duration"), now: now, then: then, later: later, by: .cluster)[cluster]?.histogram {
            reply.taskP50Ns = task.percentile(0.5)
            reply.taskP99Ns = task.percentile(0.99)
        }
        let cpu = then.map { FrameMath.rates(Selector(metric: "mesh_process_cpu_seconds"), now: now, then: $0, later: later, by: .instance) } ?? [:]
        let resident = FrameMath.gauges(Selector(metric: "mesh_process_resident_memory_bytes"), frame: now, by: .instance)
        let limit = FrameMath.gauges(Selector(metric: "mesh_process_memory_limit_bytes"), frame: now, by: .instance)
        reply.processes = now.instances.sorted { $0.key < $1.key }.map { instance, view in
            let key = GroupKey(service: instance.service, instance: instance.instance)
            let rss = resident[key] ?? 0
            let memoryLimit = limit[key] ?? 0
            return ProcessSummary(
                service: instance.service, instance: instance.instance, up: view.up, cpuPercent: (cpu[key] ?? 0) * 100,
                residentBytes: rss >= 1.8e19 ? UInt64.max : UInt64(max(0, rss)), memoryPercent: memoryLimit > 0 ? rss / memoryLimit * 100 : 0,
                restarts: UInt32(clamping: view.restarts), lastSeenUnixMs: view.lastSeenUnixMs)
        }
        let start = now.atUnixMs - windowMs
        var previous: Frame?
        for frame in frames where frame.atUnixMs >= start - 1 {
            if let previous {
                let rate = FrameMath.rates(Selector(metric: "mesh_actions_total"), now: frame, then: previous, by: .cluster)[cluster] ?? 0
                reply.actionRate.append(MetricPoint(timestampUnixMs: frame.atUnixMs, value: rate))
            }
            previous = frame
        }
        return reply
    }

    /// The alerts in wire form.
    public static func alerts(_ statuses: [AlertStatus]) -> ListAlertsReply {
        ListAlertsReply(alerts: statuses.map(alertInfo))
    }

    /// One alert in wire form.
    public static func alertInfo(_ status: AlertStatus) -> AlertInfo {
        AlertInfo(
            rule: status.rule, severity: status.severity.rawValue, summary: status.summary, state: status.state, labels: status.labels,
            value: status.value, threshold: status.threshold, comparison: status.comparison.rawValue,
            activeSinceUnixMs: status.activeSinceUnixMs, firedAtUnixMs: status.firedAtUnixMs, resolvedAtUnixMs: status.resolvedAtUnixMs)
    }
}
