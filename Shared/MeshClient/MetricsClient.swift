public import MeshCore
public import MeshProto
public import Nats

/// The typed client of the metrics collector: a metric's series
/// (`<prefix>.collector.series`), the dashboard summary (`<prefix>.collector.summary`) and
/// the alerts (`<prefix>.alerts.list`). Any collector instance answers (queue group
/// `collector`; each keeps the whole cluster view).
///
/// ```swift
/// let metrics = MetricsClient(connection: nats, subjects: subjects)
/// let summary = try await metrics.summary(minutes: 5)
/// let firing = try await metrics.alerts().filter { $0.state == "firing" }
/// let p99 = try await metrics.series(MetricSeriesRequest(name: "mesh_action_duration", minutes: 15))
/// ```
public final class MetricsClient: Sendable {
    private let connection: NatsConnection
    private let subjects: Subjects
    private let timeout: Duration

    /// - Parameter timeout: how long one request waits for a collector's reply.
    public init(connection: NatsConnection, subjects: Subjects, timeout: Duration = .seconds(2)) {
        self.connection = connection
        self.subjects = subjects
        self.timeout = timeout
    }

    /// One metric's series, grouped as the request says.
    /// - Throws: ``MeshError`` `unavailable` when no collector runs, `invalid_argument` for a
    ///   bad request, `not_found` for a metric the collector has not seen.
    public func series(_ request: MetricSeriesRequest) async throws(MeshError) -> MetricSeriesReply {
        let reply: MetricSeriesReply = try await call(subjects.collectorSeries, request)
        if let error = reply.error { throw MeshError(reply: error, context: "the metrics collector") }
        return reply
    }

    /// The dashboard summary over the last `minutes` (1 when 0).
    /// - Throws: ``MeshError`` `unavailable` when no collector runs.
    public func summary(minutes: UInt32 = 1) async throws(MeshError) -> MetricsSummaryReply {
        let reply: MetricsSummaryReply = try await call(subjects.collectorSummary, MetricsSummaryRequest(minutes: minutes))
        if let error = reply.error { throw MeshError(reply: error, context: "the metrics collector") }
        return reply
    }

    /// Pending and firing alerts (firing first); with `includeResolved`, the recently
    /// resolved ones after them.
    /// - Throws: ``MeshError`` `unavailable` when no collector runs.
    public func alerts(includeResolved: Bool = false) async throws(MeshError) -> [AlertInfo] {
        let reply: ListAlertsReply = try await call(subjects.alertsList, ListAlertsRequest(includeResolved: includeResolved))
        if let error = reply.error { throw MeshError(reply: error, context: "the metrics collector") }
        return reply.alerts
    }

    private func call<Request: MeshMessage, Reply: MeshMessage>(_ subject: String, _ request: Request) async throws(MeshError) -> Reply {
        do {
            return try await ServiceRequest.call(connection, subject, request, timeout: timeout, service: "the metrics collector")
        } catch where error.code == .timeout {
            throw MeshError(.unavailable, "no metrics collector answered within \(timeout)", retryAfter: .seconds(1))
        }
    }
}
