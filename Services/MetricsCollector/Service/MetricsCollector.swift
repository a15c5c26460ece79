public import ArgumentParser
import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
public import MeshRuntime
import Metrics
import Nats
import NatsMicro
public import ServiceLifecycle
import Synchronization

/// Options of `mesh-metrics-collector` beyond the common ones.
///
/// | flag | environment | default |
/// |---|---|---|
/// | `--alert-rules` | `MESH_ALERT_RULES` | none: the built-in rules (``AlertRuleSet/defaults``) |
/// | `--series-step-ms` | `MESH_SERIES_STEP_MS` | `10000`: one point per series per step; alerts are evaluated every step |
/// | `--series-window-minutes` | `MESH_SERIES_WINDOW_MINUTES` | `30`: how far back the in-memory series reach (5...360) |
/// | `--stale-after-ms` | `MESH_STALE_AFTER_MS` | `10000`: an instance silent longer is down (`mesh_instance_up` 0) |
/// | `--forget-after-ms` | `MESH_FORGET_AFTER_MS` | `600000`: an instance silent longer is forgotten |
/// | `--snapshot-buffer` | `MESH_SNAPSHOT_BUFFER` | `10000`: snapshots buffered before the collector drops (and counts) them |
/// | `--rollup-interval-ms` | `MESH_ROLLUP_INTERVAL_MS` | `60000`: raw point period and batch flush; 0 turns rollups off |
/// | `--rollup-maintenance-ms` | `MESH_ROLLUP_MAINTENANCE_MS` | `300000`: hourly/daily rollups and pruning period |
/// | `--retention-raw-days` | `MESH_RETENTION_RAW_DAYS` | `7` |
/// | `--retention-hourly-days` | `MESH_RETENTION_HOURLY_DAYS` | `30` |
/// | `--retention-daily-days` | `MESH_RETENTION_DAILY_DAYS` | `365` |
public struct CollectorOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("alert-rules"), help: "YAML alert rules file; absent: the built-in rules (env MESH_ALERT_RULES).")
    public var alertRules: String = MeshEnvironment.string("MESH_ALERT_RULES") ?? ""

    @Option(name: .customLong("series-step-ms"), help: "Series step and alert evaluation period in ms (env MESH_SERIES_STEP_MS).")
    public var seriesStepMs: Int = MeshEnvironment.int("MESH_SERIES_STEP_MS", 10_000)

    @Option(name: .customLong("series-window-minutes"), help: "Minutes of in-memory series (env MESH_SERIES_WINDOW_MINUTES).")
    public var seriesWindowMinutes: Int = MeshEnvironment.int("MESH_SERIES_WINDOW_MINUTES", 30)

    @Option(name: .customLong("stale-after-ms"), help: "An instance silent this long is down (env MESH_STALE_AFTER_MS).")
    public var staleAfterMs: Int = MeshEnvironment.int("MESH_STALE_AFTER_MS", 10_000)

    @Option(name: .customLong("forget-after-ms"), help: "An instance silent this long is forgotten (env MESH_FORGET_AFTER_MS).")
    public var forgetAfterMs: Int = MeshEnvironment.int("MESH_FORGET_AFTER_MS", 600_000)

    @Option(name: .customLong("snapshot-buffer"), help: "Snapshots buffered before drops (env MESH_SNAPSHOT_BUFFER).")
    public var snapshotBuffer: Int = MeshEnvironment.int("MESH_SNAPSHOT_BUFFER", 10_000)

    @Option(name: .customLong("rollup-interval-ms"), help: "Raw rollup point period in ms; 0 disables rollups (env MESH_ROLLUP_INTERVAL_MS).")
    public var rollupIntervalMs: Int = MeshEnvironment.int("MESH_ROLLUP_INTERVAL_MS", 60_000)

    @Option(name: .customLong("rollup-maintenance-ms"), help: "Hourly/daily rollup and pruning period in ms (env MESH_ROLLUP_MAINTENANCE_MS).")
    public var rollupMaintenanceMs: Int = MeshEnvironment.int("MESH_ROLLUP_MAINTENANCE_MS", 300_000)

    @Option(name: .customLong("retention-raw-days"), help: "Days raw points are kept (env MESH_RETENTION_RAW_DAYS).")
    public var retentionRawDays: Int = MeshEnvironment.int("MESH_RETENTION_RAW_DAYS", 7)

    @Option(name: .customLong("retention-hourly-days"), help: "Days hourly rollups are kept (env MESH_RETENTION_HOURLY_DAYS).")
    public var retentionHourlyDays: Int = MeshEnvironment.int("MESH_RETENTION_HOURLY_DAYS", 30)

    @Option(name: .customLong("retention-daily-days"), help: "Days daily rollups are kept (env MESH_RETENTION_DAILY_DAYS).")
    public var retentionDailyDays: Int = MeshEnvironment.int("MESH_RETENTION_DAILY_DAYS", 365)

    public init() {}

    public func validate() throws {
        guard (500...60_000).contains(seriesStepMs) else { throw ValidationError("--series-step-ms must be in 500...60000") }
        guard (5...360).contains(seriesWindowMinutes) else { throw ValidationError("--series-window-minutes must be in 5...360") }
        guard seriesWindowMinutes * 60_000 / seriesStepMs <= 10_000 else {
            throw ValidationError("--series-window-minutes / --series-step-ms would keep more than 10000 frames")
        }
        guard (500...3_600_000).contains(staleAfterMs) else { throw ValidationError("--stale-after-ms must be in 500...3600000") }
        guard forgetAfterMs >= staleAfterMs, forgetAfterMs <= 86_400_000 else {
            throw ValidationError("--forget-after-ms must be at least --stale-after-ms and at most 86400000")
        }
        guard (100...1_000_000).contains(snapshotBuffer) else { throw ValidationError("--snapshot-buffer must be in 100...1000000") }
        guard rollupIntervalMs == 0 || (1000...3_600_000).contains(rollupIntervalMs) else {
            throw ValidationError("--rollup-interval-ms must be 0 or in 1000...3600000")
        }
        guard (1000...86_400_000).contains(rollupMaintenanceMs) else { throw ValidationError("--rollup-maintenance-ms must be in 1000...86400000") }
        guard (1...365).contains(retentionRawDays), (1...3650).contains(retentionHourlyDays), (1...36_500).contains(retentionDailyDays) else {
            throw ValidationError("retention days must be positive (raw ≤ 365, hourly ≤ 3650, daily ≤ 36500)")
        }
        if !alertRules.isEmpty {
            do { _ = try AlertRuleSet.load(path: alertRules) } catch { throw ValidationError(error.message) }
        }
    }

    /// Frames kept in memory.
    var maxFrames: Int { max(2, seriesWindowMinutes * 60_000 / seriesStepMs + 1) }
}

/// `mesh-metrics-collector`: gathers every process's metric snapshots, serves the cluster
/// view to Prometheus, answers series/summary/alert questions over NATS, evaluates alert
/// rules and writes rollups to Postgres.
///
/// Every instance subscribes to every snapshot (`<prefix>.metrics.*.*`) and so keeps the
/// whole cluster view: any instance can be scraped and answers queries (queue group
/// `collector`); alert events may come from each running instance (their ids differ, the
/// `node` of an event names the instance); one instance at a time writes rollups (a lease
/// row in Postgres, see ``RollupWriter``).
public enum MetricsCollector {
    public static let descriptor = ServiceDescriptor(
        name: .metricsCollector, description: "Cluster metrics, Prometheus exposition, alerts and rollups", usesPostgres: true,
        migrations: CollectorSchema.migrations)

    /// The collector's services.
    /// - Throws: ``MeshError`` when the rules file is invalid.
    public static func services(context: ServiceContext, options: CollectorOptions) throws -> [any Service] {
        let rules = options.alertRules.isEmpty ? AlertRuleSet.defaults : try AlertRuleSet.load(path: options.alertRules)
        return [CollectorService(context: context, options: options, rules: rules)]
    }
}

/// The collector's single long-running part: ingest callback, step loop, query endpoints.
final class CollectorService: Service, Sendable {
    private let context: ServiceContext
    private let options: CollectorOptions
    private let state: Mutex<State>
    private let rejections = Mutex<[SnapshotRejection: ContinuousClock.Instant]>([:])
    private let received = Counter(label: "mesh_collector_snapshots_received_total")
    private let restartsSeen = Counter(label: "mesh_collector_instance_restarts_total")
    private let rejected: [SnapshotRejection: Counter]
    private let instancesGauge = Gauge(label: "mesh_collector_instances")
    private let firingGauge = Gauge(label: "mesh_collector_alerts_firing")
    private let droppedGauge = Gauge(label: "mesh_collector_snapshots_dropped")

    struct State {
        var cluster: ClusterMetrics
        var book: AlertBook
    }

    /// Largest snapshot decoded.
    static let maxSnapshotBytes = 4 * 1024 * 1024

    init(context: ServiceContext, options: CollectorOptions, rules: [AlertRule]) {
        self.context = context
        self.options = options
        let configuration = ClusterMetrics.Configuration(
            staleAfterMs: Int64(options.staleAfterMs), forgetAfterMs: Int64(options.forgetAfterMs), maxFrames: options.maxFrames)
        state = Mutex(State(cluster: ClusterMetrics(configuration: configuration), book: AlertBook(rules: rules)))
        var rejected: [SnapshotRejection: Counter] = [:]
        for reason in SnapshotRejection.allCases {
            rejected[reason] = Counter(label: "mesh_collector_snapshots_rejected_total", dimensions: [("reason", reason.rawValue)])
        }
        self.rejected = rejected
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Decodes and applies one snapshot (on the NATS delivery thread). Never throws: a bad
    /// snapshot is counted and logged (subject and reason, never the payload).
    /// - Returns: why the snapshot was refused, nil when it was taken.
    @discardableResult
    func ingest(_ message: NatsMessage) -> SnapshotRejection? {
        received.increment()
        let prefix = context.subjects.prefix
        do throws(SnapshotRejection) {
            guard message.payload.count <= Self.maxSnapshotBytes, let snapshot = try? MetricSnapshot(serializedBytes: message.payload) else {
                throw .malformed
            }
            let now = Self.nowMs()
            let applied = try state.withLock { state throws(SnapshotRejection) in
                try state.cluster.ingest(snapshot, subject: message.subject, prefix: prefix, now: now)
            }
            if applied == .restarted {
                restartsSeen.increment()
                context.logger.info("instance restarted", metadata: ["mesh.service": "\(snapshot.service)", "mesh.instance": "\(snapshot.instance)"])
            }
            return nil
        } catch {
            rejected[error]?.increment()
            // At most one log line per reason per minute.
            let now = ContinuousClock.now
            let log = rejections.withLock { last -> Bool in
                if let previous = last[error], now - previous < .seconds(60) { return false }
                last[error] = now
                return true
            }
            if log {
                context.logger.warning("metric snapshot rejected", metadata: ["mesh.subject": "\(message.subject)", "mesh.reason": "\(error.rawValue)"])
            }
            return error
        }
    }

    func run() async throws {
        let context = self.context
        let logger = context.logger
        let subjects = context.subjects
        let js = try context.nats.jetStream()
        _ = try await StartupRetry.run("cluster resources", logger: logger) {
            try await ClusterResources.ensure(
                js, subjects: subjects, replicas: context.options.jetStreamReplicas, shardCount: context.options.shardCount, logger: logger)
        }
        let events = EventPublisher(js: js, subjects: subjects, node: context.instanceID, logger: logger)

        // Discovery lists the snapshot intake with its statistics (requests = snapshots).
        let intake = context.micro.registerEndpoint(name: "snapshots", subject: subjects.metricsWildcard)
        let subscription = try context.nats.subscribe(
            subjects.metricsWildcard, queue: nil, maxPendingMessages: options.snapshotBuffer, maxPendingBytes: 256 * 1024 * 1024
        ) { [self] message in
            let started = ContinuousClock.now
            let rejection = ingest(message)
            intake.record(processingTime: ContinuousClock.now - started, error: rejection?.rawValue)
        }
        defer { try? subscription.unsubscribe() }

        let windowMinutes = options.seriesWindowMinutes
        _ = try context.micro.addEndpoint(name: "series", subject: subjects.collectorSeries, queueGroup: subjects.collectorQueue) { [self] request in
            let reply: MetricSeriesReply
            if let query = try? MetricSeriesRequest(serializedBytes: request.message.payload) {
                let frames = state.withLock { $0.cluster.frames }
                reply = CollectorQueries.series(query, frames: frames, windowMinutes: windowMinutes)
            } else {
                reply = MetricSeriesReply(error: MeshError(.invalidArgument, "malformed series request").errorReply)
            }
            Self.respond(request, reply)
        }
        _ = try context.micro.addEndpoint(name: "summary", subject: subjects.collectorSummary, queueGroup: subjects.collectorQueue) { [self] request in
            let reply: MetricsSummaryReply
            if let query = try? MetricsSummaryRequest(serializedBytes: request.message.payload) {
                let (frames, firing) = state.withLock { ($0.cluster.frames, $0.book.firingCount) }
                reply = CollectorQueries.summary(query, frames: frames, windowMinutes: windowMinutes, firingAlerts: firing)
            } else {
                reply = MetricsSummaryReply(error: MeshError(.invalidArgument, "malformed summary request").errorReply)
            }
            Self.respond(request, reply)
        }
        _ = try context.micro.addEndpoint(name: "alerts", subject: subjects.alertsList, queueGroup: subjects.collectorQueue) { [self] request in
            let reply: ListAlertsReply
            if let query = try? ListAlertsRequest(serializedBytes: request.message.payload) {
                reply = CollectorQueries.alerts(state.withLock { $0.book.list(includeResolved: query.includeResolved) })
            } else {
                reply = ListAlertsReply(error: MeshError(.invalidArgument, "malformed alerts request").errorReply)
            }
            Self.respond(request, reply)
        }

        context.metricsExposition.serve { [self] in
            let now = Self.nowMs()
            // Rendered from a copy, so ingest does not wait for the text.
            return PrometheusExposition.render(state.withLock { $0.cluster }, now: now)
        }

        var writer: RollupWriter?
        if options.rollupIntervalMs > 0, let store = context.store {
            writer = RollupWriter(
                store: store, holder: context.instanceID.rawValue,
                retention: RollupRetention(rawDays: options.retentionRawDays, hourlyDays: options.retentionHourlyDays, dailyDays: options.retentionDailyDays),
                leaseTTL: .milliseconds(options.rollupIntervalMs * 3), maxQueued: 200_000, logger: logger)
        }
        logger.info(
            "collecting", metadata: ["mesh.rules": "\(state.withLock { $0.book.rules.count })", "mesh.series.step_ms": "\(options.seriesStepMs)"])

        let clock = ContinuousClock()
        var next = clock.now
        var lastRollupFrame: Frame?
        var lastMaintenance = clock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = Self.nowMs()
            let (notices, frame, instances, firing, forgotten) = state.withLock { state in
                let forgotten = state.cluster.forget(now: now)
                let frame = state.cluster.takeFrame(now: now)
                let notices = state.book.evaluate(frames: state.cluster.frames)
                return (notices, frame, state.cluster.instances.count, state.book.firingCount, forgotten)
            }
            if !forgotten.isEmpty { logger.info("instances forgotten", metadata: ["mesh.instances": "\(forgotten.map(\.description))"]) }
            instancesGauge.record(instances)
            firingGauge.record(firing)
            droppedGauge.record(subscription.droppedCount)
            for notice in notices { publish(notice, events: events) }

            if let writer {
                if let previous = lastRollupFrame {
                    if frame.atUnixMs - previous.atUnixMs >= Int64(options.rollupIntervalMs) {
                        writer.enqueue(RawPoint.between(previous, frame))
                        lastRollupFrame = frame
                        await writer.flush()
                    }
                } else {
                    lastRollupFrame = frame
                }
                if clock.now - lastMaintenance >= .milliseconds(options.rollupMaintenanceMs) {
                    lastMaintenance = clock.now
                    await writer.maintain()
                }
            }

            next = next.advanced(by: .milliseconds(options.seriesStepMs))
            if next < clock.now { next = clock.now }
            let deadline = next
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(until: deadline, clock: clock) } } catch { break }
        }
        if let writer { await writer.flush() }
    }

    /// Publishes a fired or resolved alert on `<prefix>.evt.alert.<rule>`.
    private func publish(_ notice: AlertNotice, events: EventPublisher) {
        let status = notice.status
        guard let kind = try? EventKind.alert(rule: status.rule) else { return }
        var attributes = status.labels
        attributes["state"] = notice.transition == .fired ? "firing" : "resolved"
        attributes["severity"] = status.severity.rawValue
        attributes["value"] = PrometheusExposition.number(status.value)
        attributes["threshold"] = "\(status.comparison.rawValue) \(PrometheusExposition.number(status.threshold))"
        let reason = notice.transition == .fired ? "fired: \(status.summary)" : "resolved: \(status.summary)"
        events.publish(kind, reason: reason, attributes: attributes)
        let level: Logger.Level = notice.transition == .fired ? .warning : .info
        context.logger.log(
            level: level, "alert \(attributes["state"] ?? "")",
            metadata: ["mesh.alert.rule": "\(status.rule)", "mesh.alert.labels": "\(status.labels)", "mesh.alert.value": "\(attributes["value"] ?? "")"])
    }

    private static func respond<Reply: MeshMessage>(_ request: MicroRequest, _ reply: Reply) {
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = Reply.messageType.rawValue
        request.respond(payload: reply.serializedBytes(), headers: headers)
    }
}
