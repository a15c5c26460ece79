import Foundation
import Hummingbird
import MeshClient
import MeshCore
import MeshProto

/// `/api/v1/alerts`, `/api/v1/metrics/summary` and `/api/v1/metrics/series`: the metrics
/// collector's answers as JSON. With no collector running they answer 503 `unavailable`.
extension GatewayAPI {
    func metricsOperation(_ operation: Operation, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        switch operation {
        case .listAlerts:
            let includeResolved: Bool
            switch query["include_resolved"].map(String.init) {
            case nil, "", "false": includeResolved = false
            case "true": includeResolved = true
            default: throw APIError.badRequest("include_resolved must be true or false")
            }
            let alerts = try await metricsCollector.alerts(includeResolved: includeResolved)
            return Self.json(["items": alerts.map(Self.object(alert:))])
        case .metricsSummary:
            let minutes = try Self.queryInt(request, "minutes", range: 1...360) ?? 1
            return Self.json(Self.object(summary: try await metricsCollector.summary(minutes: UInt32(minutes))))
        case .metricsSeries:
            guard let name = query["name"].map(String.init), MetricName.isValid(name) else {
                throw APIError.badRequest("name must be a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, at most 200 characters)")
            }
            var series = MetricSeriesRequest(name: name)
            series.minutes = UInt32(try Self.queryInt(request, "minutes", range: 1...360) ?? 15)
            for (parameter, field) in [("service", \MetricSeriesRequest.service), ("instance", \MetricSeriesRequest.instance)] {
                guard let value = query[Substring(parameter)].map(String.init), !value.isEmpty else { continue }
                guard Identifier.isValid(value) else { throw APIError.badRequest("\(parameter) must match [a-z0-9][a-z0-9_-]{0,62}") }
                series[keyPath: field] = value
            }
            if let groupBy = query["group_by"].map(String.init), !groupBy.isEmpty {
                guard ["cluster", "service", "instance", "series"].contains(groupBy) else {
                    throw APIError.badRequest("group_by must be cluster, service, instance or series")
                }
                series.groupBy = groupBy
            }
            let reply = try await metricsCollector.series(series)
            return Self.json(["name": name, "step_ms": reply.stepMs, "series": reply.series.map(Self.object(series:))])
        default:
            throw APIError.notFoundRoute
        }
    }

    static func time(_ unixMs: Int64) -> Any { rfc3339(unixMs: unixMs) ?? NSNull() }

    static func object(alert: AlertInfo) -> [String: Any] {
        [
            "rule": alert.rule, "severity": alert.severity, "summary": alert.summary, "state": alert.state, "labels": alert.labels,
            "value": alert.value, "threshold": alert.threshold, "comparison": alert.comparison,
            "active_since": time(alert.activeSinceUnixMs), "fired_at": time(alert.firedAtUnixMs), "resolved_at": time(alert.resolvedAtUnixMs),
        ]
    }

    static func object(summary: MetricsSummaryReply) -> [String: Any] {
        [
            "generated_at": time(summary.generatedAtUnixMs), "window_seconds": summary.windowSeconds,
            "actions_per_second": summary.actionsPerSecond, "action_error_rate": summary.actionErrorRate,
            "tasks_per_second": summary.tasksPerSecond, "task_failure_rate": summary.taskFailureRate,
            "action_latency_ns": ["p50": summary.actionP50Ns, "p90": summary.actionP90Ns, "p99": summary.actionP99Ns],
            "task_latency_ns": ["p50": summary.taskP50Ns, "p99": summary.taskP99Ns],
            "firing_alerts": summary.firingAlerts,
            "processes": summary.processes.map { process -> [String: Any] in
                [
                    "service": process.service, "instance": process.instance, "up": process.up, "cpu_percent": process.cpuPercent,
                    "resident_bytes": process.residentBytes, "memory_percent": process.memoryPercent, "restarts": process.restarts,
                    "last_seen": time(process.lastSeenUnixMs),
                ]
            },
            "action_rate": summary.actionRate.map { ["t": time($0.timestampUnixMs), "value": $0.value] },
        ]
    }

    static func object(series: MetricSeries) -> [String: Any] {
        [
            "name": series.name, "kind": series.kind, "unit": series.unit, "labels": series.labels,
            "points": series.points.map { point -> [String: Any] in
                var object: [String: Any] = ["t": time(point.timestampUnixMs), "value": point.value]
                if series.kind == "histogram" {
                    object["p50"] = point.p50
                    object["p90"] = point.p90
                    object["p99"] = point.p99
                    object["count"] = point.count
                }
                return object
            },
        ]
    }
}
