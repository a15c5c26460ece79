import Foundation
import Logging
import MeshCore
import Metrics
import Store
import Synchronization

/// The collector's PostgreSQL schema (versions 400–499 belong to the collector).
///
/// - `metric_points`: raw points, one per series per rollup interval (default 60 s): for
///   counters the rate per second over the interval (`value`) and the increase (`count`);
///   for gauges the value; for histograms the interval's observations — `count`, `sum`
///   (in the unit), mean (`value`) and `p50`/`p90`/`p99` of the bucket-wise merged window.
///   Kept 7 days.
/// - `metric_rollups_hourly` (kept 30 days) and `metric_rollups_daily` (kept 1 year): per
///   series and bucket, `samples`, `avg`/`min`/`max` of `value`, the summed `count` and
///   `sum` (so a histogram's mean over the bucket is exact), and the highest `p50`/`p90`/
///   `p99` of the bucket's points (an upper bound: percentiles are never averaged).
/// - `metric_rollup_lease`: which collector instance writes (one row; see ``RollupWriter``).
enum CollectorSchema {
    static let migrations: [Migration] = [
        Migration(
            version: 401, name: "collector_metric_rollups",
            sql: """
                CREATE TABLE metric_points (
                    ts timestamptz NOT NULL,
                    service text NOT NULL,
                    instance text NOT NULL,
                    name text NOT NULL,
                    labels jsonb NOT NULL DEFAULT '{}',
                    kind text NOT NULL,
                    value double precision NOT NULL,
                    count double precision NOT NULL DEFAULT 0,
                    sum double precision NOT NULL DEFAULT 0,
                    p50 double precision,
                    p90 double precision,
                    p99 double precision,
                    PRIMARY KEY (name, service, instance, labels, ts)
                );
                CREATE INDEX metric_points_ts_idx ON metric_points (ts);
                CREATE TABLE metric_rollups_hourly (
                    bucket timestamptz NOT NULL,
                    service text NOT NULL,
                    instance text NOT NULL,
                    name text NOT NULL,
                    labels jsonb NOT NULL DEFAULT '{}',
                    kind text NOT NULL,
                    samples bigint NOT NULL,
                    avg double precision NOT NULL,
                    min double precision NOT NULL,
                    max double precision NOT NULL,
                    count double precision NOT NULL,
                    sum double precision NOT NULL,
                    p50 double precision,
                    p90 double precision,
                    p99 double precision,
                    PRIMARY KEY (name, service, instance, labels, bucket)
                );
                CREATE INDEX metric_rollups_hourly_bucket_idx ON metric_rollups_hourly (bucket);
                CREATE TABLE metric_rollups_daily (LIKE metric_rollups_hourly INCLUDING ALL);
                CREATE TABLE metric_rollup_lease (
                    id integer PRIMARY KEY,
                    holder text NOT NULL,
                    expires_at timestamptz NOT NULL
                );
                """),
    ]

    /// `INSERT … SELECT` of one rollup level from the level below, for buckets starting at
    /// or after $1 and ending before $2 (recomputed, so a re-run is idempotent).
    static func rollupSQL(into target: String, from source: String, unit: String, time: String) -> String {
        """
        INSERT INTO \(target) (bucket, service, instance, name, labels, kind, samples, avg, min, max, count, sum, p50, p90, p99)
        SELECT date_trunc('\(unit)', \(time)), service, instance, name, labels, min(kind), \(source == "metric_points" ? "count(*)" : "sum(samples)"),
               \(source == "metric_points" ? "avg(value)" : "sum(avg * samples) / sum(samples)"), min(\(source == "metric_points" ? "value" : "min")),
               max(\(source == "metric_points" ? "value" : "max")), sum(count), sum(sum), max(p50), max(p90), max(p99)
        FROM \(source)
        WHERE \(time) >= $1 AND \(time) < $2
        GROUP BY 1, service, instance, name, labels
        ON CONFLICT (name, service, instance, labels, bucket) DO UPDATE SET
            kind = EXCLUDED.kind, samples = EXCLUDED.samples, avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max,
            count = EXCLUDED.count, sum = EXCLUDED.sum, p50 = EXCLUDED.p50, p90 = EXCLUDED.p90, p99 = EXCLUDED.p99
        """
    }

    /// Takes or renews the writer lease for `$1` until `$2`; returns a row when `$1` holds it.
    static let leaseSQL = """
        INSERT INTO metric_rollup_lease (id, holder, expires_at) VALUES (1, $1, $2)
        ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
        WHERE metric_rollup_lease.holder = EXCLUDED.holder OR metric_rollup_lease.expires_at < now()
        RETURNING holder
        """
}

/// One raw point bound for `metric_points`.
public struct RawPoint: Sendable, Hashable {
    /// End of the interval (collector's clock).
    public var timestampUnixMs: Int64
    public var service: String
    public var instance: String
    /// The metric's name.
    public var name: String
    /// The series' own labels.
    public var labels: [String: String]
    public var kind: MetricKind
    /// Counter: rate per second; gauge: value; histogram: mean of the interval's observations.
    public var value: Double
    /// Counter: increase; histogram: observations in the interval; gauge: 0.
    public var count: Double
    /// Histogram: sum of the interval's observations (in its unit); else 0.
    public var sum: Double
    /// Histogram percentiles of the interval (nil without observations).
    public var p50: Double?
    public var p90: Double?
    public var p99: Double?

    /// The points of every series between two frames (counters as rates, gauges as values,
    /// histograms as the window's observations). A counter or histogram absent from `then`
    /// counts from zero when its process was known then or started since, as in
    /// ``FrameMath/rates(_:now:then:by:)``.
    public static func between(_ then: Frame, _ now: Frame) -> [RawPoint] {
        let seconds = Double(now.atUnixMs - then.atUnixMs) / 1000
        guard seconds > 0 else { return [] }
        var points: [RawPoint] = []
        for (instance, view) in now.instances {
            let earlier = then.instances[instance]
            func point(_ key: SeriesKey, _ kind: MetricKind, _ value: Double, count: Double = 0, sum: Double = 0) -> RawPoint {
                RawPoint(
                    timestampUnixMs: now.atUnixMs, service: instance.service, instance: instance.instance, name: key.name,
                    labels: key.labelDictionary, kind: kind, value: value, count: count, sum: sum)
            }
            let known = earlier != nil || view.processStartedAtUnixMs >= then.atUnixMs
            for (key, value) in view.counters where known {
                let before = earlier?.counters[key] ?? 0
                let delta = Double(value >= before ? value - before : value)
                points.append(point(key, .counter, delta / seconds, count: delta))
            }
            for (key, value) in view.gauges { points.append(point(key, .gauge, value)) }
            for (key, value) in view.histograms where known {
                let before = earlier?.histograms[key]
                guard before == nil || before?.unit == value.unit else { continue }
                let window = before.map { value.histogram.subtracting($0.histogram) } ?? value.histogram
                var raw = point(key, .histogram, window.mean, count: Double(window.count), sum: Double(window.sum))
                if window.count > 0 {
                    raw.p50 = Double(window.percentile(0.5))
                    raw.p90 = Double(window.percentile(0.9))
                    raw.p99 = Double(window.percentile(0.99))
                }
                points.append(raw)
            }
        }
        return points
    }
}

/// Retention of the rollup tables.
public struct RollupRetention: Sendable, Hashable {
    /// Days `metric_points` rows are kept.
    public var rawDays: Int = 7
    /// Days `metric_rollups_hourly` rows are kept.
    public var hourlyDays: Int = 30
    /// Days `metric_rollups_daily` rows are kept.
    public var dailyDays: Int = 365

    public init(rawDays: Int = 7, hourlyDays: Int = 30, dailyDays: Int = 365) {
        self.rawDays = rawDays
        self.hourlyDays = hourlyDays
        self.dailyDays = dailyDays
    }
}

/// Writes raw points to PostgreSQL in batches, off the collector's hot path, and runs the
/// periodic rollup and pruning job.
///
/// **One writer.** Every collector instance keeps the whole cluster view, so any of them
/// could write; only the holder of the lease row in `metric_rollup_lease` does. Before each
/// batch an instance takes or renews the lease (one `INSERT … ON CONFLICT … WHERE holder = me
/// OR expired … RETURNING`, TTL three flush intervals); instances that do not hold it drop
/// their batch. When the holder stops, another instance takes over once the lease expires.
/// Raw points are keyed by series and source timestamp (`ON CONFLICT DO NOTHING`), so a
/// batch written twice around a hand-over is stored once.
final class RollupWriter: Sendable {
    private let store: Store
    private let holder: String
    private let retention: RollupRetention
    private let leaseTTL: Duration
    private let logger: Logger
    /// Points waiting to be written, bounded by `maxQueued` (oldest dropped beyond it).
    private let queue = Mutex<[RawPoint]>([])
    private let maxQueued: Int
    private let written = Counter(label: "mesh_collector_rollup_points_written_total")
    private let dropped = Counter(label: "mesh_collector_rollup_points_dropped_total")
    private let failures = Counter(label: "mesh_collector_rollup_failures_total")
    private let leading = Gauge(label: "mesh_collector_rollup_writer")

    /// Rows per INSERT batch.
    static let batchSize = 2000

    init(store: Store, holder: String, retention: RollupRetention, leaseTTL: Duration, maxQueued: Int, logger: Logger) {
        self.store = store
        self.holder = holder
        self.retention = retention
        self.leaseTTL = leaseTTL
        self.maxQueued = maxQueued
        self.logger = logger
    }

    /// Queues points for the next flush (drops the oldest beyond the bound).
    func enqueue(_ points: [RawPoint]) {
        let overflow = queue.withLock { queue -> Int in
            queue.append(contentsOf: points)
            let overflow = max(0, queue.count - maxQueued)
            if overflow > 0 { queue.removeFirst(overflow) }
            return overflow
        }
        if overflow > 0 { dropped.increment(by: overflow) }
    }

    /// Takes or renews the writer lease.
    /// - Returns: whether this instance holds it.
    func holdLease() async throws(StoreError) -> Bool {
        let until = Date().addingTimeInterval(leaseTTL.totalSeconds)
        let rows = try await store.query(CollectorSchema.leaseSQL, [.text(holder), .timestamp(until)])
        let holds = !rows.isEmpty
        leading.record(holds ? 1 : 0)
        return holds
    }

    /// Writes the queued points when this instance holds the lease; otherwise drops them
    /// (the lease holder writes the same series). Points of a failed write stay queued.
    func flush() async {
        let points = queue.withLock { queue in defer { queue.removeAll(keepingCapacity: true) }; return queue }
        guard !points.isEmpty else { return }
        do {
            guard try await holdLease() else { return }
            for start in stride(from: 0, to: points.count, by: Self.batchSize) {
                let batch = points[start..<min(start + Self.batchSize, points.count)]
                try await store.batchInsert(
                    table: "metric_points", columns: ["ts", "service", "instance", "name", "labels", "kind", "value", "count", "sum", "p50", "p90", "p99"],
                    rows: batch.map(Self.row), onConflict: "DO NOTHING")
                written.increment(by: batch.count)
            }
        } catch {
            failures.increment()
            logger.warning("metric points not written; kept for the next flush", metadata: ["error": "\(error)", "mesh.points": "\(points.count)"])
            enqueue(points)
        }
    }

    /// Recomputes the hourly rollups of the last two hours and the daily rollups of the
    /// last two days (buckets still open included), then deletes what is past retention.
    /// Runs only on the lease holder.
    func maintain(now: Date = Date()) async {
        do {
            guard try await holdLease() else { return }
            let hourStart = Date(timeIntervalSince1970: (now.timeIntervalSince1970 / 3600).rounded(.down) * 3600)
            let dayStart = Date(timeIntervalSince1970: (now.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
            let end = now.addingTimeInterval(3600)
            _ = try await store.execute(
                CollectorSchema.rollupSQL(into: "metric_rollups_hourly", from: "metric_points", unit: "hour", time: "ts"),
                [.timestamp(hourStart.addingTimeInterval(-3600)), .timestamp(end)])
            _ = try await store.execute(
                CollectorSchema.rollupSQL(into: "metric_rollups_daily", from: "metric_rollups_hourly", unit: "day", time: "bucket"),
                [.timestamp(dayStart.addingTimeInterval(-86_400)), .timestamp(end)])
            let pruned =
                try await store.execute("DELETE FROM metric_points WHERE ts < $1", [.timestamp(now.addingTimeInterval(-Double(retention.rawDays) * 86_400))])
                + store.execute(
                    "DELETE FROM metric_rollups_hourly WHERE bucket < $1", [.timestamp(now.addingTimeInterval(-Double(retention.hourlyDays) * 86_400))])
                + store.execute(
                    "DELETE FROM metric_rollups_daily WHERE bucket < $1", [.timestamp(now.addingTimeInterval(-Double(retention.dailyDays) * 86_400))])
            logger.debug("metric rollups refreshed", metadata: ["mesh.rows.pruned": "\(pruned)"])
        } catch {
            failures.increment()
            logger.warning("metric rollup maintenance failed", metadata: ["error": "\(error)"])
        }
    }

    static func row(_ point: RawPoint) -> [PostgresValue] {
        let labels = JSONText.string(point.labels)
        func optional(_ value: Double?) -> PostgresValue { value.map { .double($0) } ?? .null }
        return [
            .timestamp(Date(timeIntervalSince1970: Double(point.timestampUnixMs) / 1000)), .text(point.service), .text(point.instance),
            .text(point.name), .text(labels), .text(point.kind.rawValue), .double(point.value), .double(point.count), .double(point.sum),
            optional(point.p50), optional(point.p90), optional(point.p99),
        ]
    }
}
