import Foundation
import Logging
import MeshBench
import Store

/// Benchmark runs in PostgreSQL, for trends (`meshctl bench history`). Versions 500–599
/// belong to the benchmark harness (other services' migrations share `schema_migrations`
/// with their own ranges).
///
/// - `bench_runs`: one row per result of a run — when, which source revision, on which
///   host, the result's name, scenario, profile and headline figures as columns (for
///   queries), and the whole result as `jsonb`.
enum BenchSchema {
    static let migrations: [Migration] = [
        Migration(
            version: 501, name: "bench_runs",
            sql: """
                CREATE TABLE bench_runs (
                    id bigserial PRIMARY KEY,
                    recorded_at timestamptz NOT NULL DEFAULT now(),
                    started_at timestamptz NOT NULL,
                    git_revision text NOT NULL,
                    host text NOT NULL,
                    target text NOT NULL,
                    name text NOT NULL,
                    scenario text NOT NULL,
                    run integer NOT NULL,
                    profile text NOT NULL,
                    duration_seconds double precision NOT NULL,
                    operations bigint NOT NULL,
                    errors bigint NOT NULL,
                    throughput double precision NOT NULL,
                    p50_us double precision NOT NULL,
                    p90_us double precision NOT NULL,
                    p95_us double precision NOT NULL,
                    p99_us double precision NOT NULL,
                    p999_us double precision NOT NULL,
                    max_us double precision NOT NULL,
                    cpu_percent double precision,
                    rss_bytes bigint,
                    result jsonb NOT NULL
                );
                CREATE INDEX bench_runs_name_idx ON bench_runs (name, started_at);
                """),
    ]
}

/// Writes and reads `bench_runs`.
struct BenchStore {
    let store: Store

    init(url: String) {
        store = Store(configuration: StoreConfiguration(connectionString: url, poolSize: 1), logger: Logger(label: "meshctl"))
    }

    func close() { store.close() }

    /// Applies the migrations and inserts every result of `document`.
    /// - Returns: rows written.
    func save(_ document: BenchDocument) async throws -> Int {
        try await store.migrate(BenchSchema.migrations)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        var rows: [[PostgresValue]] = []
        for result in document.results {
            let json = String(decoding: try encoder.encode(result), as: UTF8.self)
            rows.append([
                .timestamp(result.startedAt), .text(document.gitRevision), .text(document.machine.hostname), .text(document.target), .text(result.name),
                .text(result.scenario), .int(Int64(result.run)), .text(result.profile), .double(result.durationSeconds), .int(Int64(result.operations)),
                .int(Int64(result.errors)), .double(result.throughput), .double(result.latency.p50Micros), .double(result.latency.p90Micros),
                .double(result.latency.p95Micros), .double(result.latency.p99Micros), .double(result.latency.p999Micros), .double(result.latency.maxMicros),
                result.resources.sampled ? .double(result.resources.cpuPercent) : .null,
                result.resources.sampled ? .int(Int64(result.resources.rssBytes)) : .null, .text(json),
            ])
        }
        return try await store.batchInsert(
            table: "bench_runs",
            columns: [
                "started_at", "git_revision", "host", "target", "name", "scenario", "run", "profile", "duration_seconds", "operations", "errors", "throughput",
                "p50_us", "p90_us", "p95_us", "p99_us", "p999_us", "max_us", "cpu_percent", "rss_bytes", "result",
            ], rows: rows)
    }

    /// A stored run's headline figures.
    struct Row {
        var startedAt: Date
        var revision: String
        var name: String
        var profile: String
        var throughput: Double
        var p50Micros: Double
        var p99Micros: Double
        var errors: Int
        var operations: Int
    }

    /// The newest `limit` rows, optionally of one result name or scenario, oldest first.
    func history(name: String?, limit: Int) async throws -> [Row] {
        try await store.migrate(BenchSchema.migrations)
        let rows = try await store.query(
            """
            SELECT started_at, git_revision, name, profile, throughput, p50_us, p99_us, errors, operations FROM (
                SELECT * FROM bench_runs WHERE $1::text IS NULL OR name = $1 OR scenario = $1
                ORDER BY started_at DESC, id DESC LIMIT $2
            ) newest ORDER BY name, started_at, id
            """, [name.map { .text($0) } ?? .null, .int(Int64(limit))])
        return try rows.map { row in
            Row(
                startedAt: try row.decode("started_at"), revision: try row.decode("git_revision"), name: try row.decode("name"),
                profile: try row.decode("profile"), throughput: try row.decode("throughput"), p50Micros: try row.decode("p50_us"),
                p99Micros: try row.decode("p99_us"), errors: Int(try row.decode("errors", Int64.self)), operations: Int(try row.decode("operations", Int64.self)))
        }
    }
}
