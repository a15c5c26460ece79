import Foundation
import LocalServers
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Store
import Synchronization
import Testing

/// The metrics collector in a running mesh: real registry, supervisor, worker, gateway and
/// two collector processes on a real nats-server and PostgreSQL. The collector's `/metrics`
/// shows every service; failing actions fire an alert (event on `mesh.evt.alert.<rule>`
/// from each collector, listed over NATS and by the gateway) that resolves once the
/// failures stop; raw points and rollups reach PostgreSQL from one collector, and the
/// other takes the writer lease over when the first stops.
/// Events received by the test, appended from the subscription's task.
final class EventLog: Sendable {
    private let events = Mutex<[Event]>([])

    func withLock<T>(_ body: (inout [Event]) -> T) -> T { events.withLock { body(&$0) } }
}

@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct MetricsCollectorSystemTests {
    static let rules = """
        defaults: false
        rules:
          - name: test_action_errors
            severity: critical
            summary: Actions fail
            expr: {type: rate, metric: mesh_actions_total, labels: {outcome: error}}
            by: cluster
            op: ">"
            threshold: 0
            for: 1s
            window: 2s
        """

    @Test func collectorShowsEveryServiceAndAnAlertFiresThenResolves() async throws {
        let nats = try await NatsServer.start()
        let postgres = try await PostgresServer.start()
        let directory = try TestEnvironment.makeTempDirectory(prefix: "collector")
        var processes: [String: ChildProcess] = [:]
        var client: NatsConnection?
        defer {
            client?.close()
            for process in processes.values where process.isRunning { kill(process.pid, SIGTERM) }
            for process in processes.values { process.stop(signal: SIGTERM, timeout: .seconds(5)) }
            nats.stop()
            postgres.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let rulesFile = "\(directory)/rules.yml"
        try Self.rules.write(toFile: rulesFile, atomically: true, encoding: .utf8)
        func start(_ service: ServiceName, id: String, extra: [String: String] = [:]) throws {
            var environment = [
                "MESH_NATS_URL": nats.url, "MESH_INSTANCE_ID": id, "MESH_LOG_LEVEL": "info", "MESH_POSTGRES_URL": postgres.connectionString,
                "MESH_SNAPSHOT_INTERVAL_MS": "500",
            ]
            environment.merge(extra) { _, new in new }
            processes[id] = try ChildProcess(
                executable: try MeshBinaries.path(service.rawValue), arguments: [], logPath: "\(directory)/\(id).log", environment: environment)
        }
        let metricsPort = try TestEnvironment.freePort()
        let collectorEnvironment = [
            "MESH_ALERT_RULES": rulesFile, "MESH_SERIES_STEP_MS": "500", "MESH_ROLLUP_INTERVAL_MS": "1000", "MESH_ROLLUP_MAINTENANCE_MS": "2000",
            "MESH_STALE_AFTER_MS": "3000",
        ]
        try start(.metricsCollector, id: "collector-1", extra: collectorEnvironment.merging(["MESH_METRICS_PORT": String(metricsPort)]) { $1 })
        try start(.registry, id: "registry-1")
        try start(.supervisor, id: "supervisor-1")
        try start(.agentWorker, id: "worker-1")
        let gatewayPort = try TestEnvironment.freePort()
        let keyFile = "\(directory)/admin.key"
        try start(.gateway, id: "gateway-1", extra: ["MESH_GATEWAY_PORT": String(gatewayPort), "MESH_GATEWAY_BOOTSTRAP_KEY_FILE": keyFile])

        // Every service shows on the collector's /metrics with service and instance labels.
        let expected = [
            ("mesh-registry", "registry-1"), ("mesh-supervisor", "supervisor-1"), ("mesh-agent-worker", "worker-1"),
            ("mesh-gateway", "gateway-1"), ("mesh-metrics-collector", "collector-1"),
        ]
        var exposition = ""
        let allShown = await TestEnvironment.waitUntil(timeout: .seconds(90)) {
            exposition = (try? LocalHTTP.request("GET", host: "127.0.0.1", port: metricsPort, path: "/metrics"))?.text ?? ""
            return expected.allSatisfy { exposition.contains(#"mesh_instance_up{instance="\#($0.1)",service="\#($0.0)"} 1"#) }
        }
        #expect(allShown, "collector /metrics lacks a service:\n\(exposition.prefix(3000))\n\(processes["collector-1"]!.logTail())")
        #expect(exposition.contains(#"mesh_process_resident_memory_bytes{instance="registry-1",service="mesh-registry"}"#))
        // A second collector: it keeps the same view and answers queries, but does not write
        // rollups while the first holds the lease.
        try start(.metricsCollector, id: "collector-2", extra: collectorEnvironment)
        #expect(exposition.contains("# TYPE mesh_cluster_process_cpu_seconds gauge"))
        for gauge in ["mesh_process_memory_limit_bytes", "mesh_nats_pending_bytes", "mesh_nats_requests_in_flight"] {
            #expect(exposition.contains(#"\#(gauge){instance="worker-1",service="mesh-agent-worker"}"#), "\(gauge)")
        }

        var options = NatsOptions()
        options.servers = [nats.url]
        let connection = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        client = connection
        let subjects = try Subjects()
        let metrics = MetricsClient(connection: connection, subjects: subjects)
        let events = try connection.subscribe(subjects.alertEventsAll)
        let seen = EventLog()
        let reader = Task {
            for await message in events {
                if let event = try? Event(serializedBytes: message.payload) { seen.withLock { $0.append(event) } }
            }
        }
        defer { reader.cancel() }

        // Garbage and impostor snapshots are counted by reason and change nothing.
        for _ in 0..<3 { try connection.publish("mesh.metrics.mesh-registry.registry-1", payload: [0xFF, 0xFF, 0xFF, 0x01]) }
        let impostor = MetricSnapshot(service: "mesh-registry", instance: "someone-else", timestampUnixMs: 1, processStartedAtUnixMs: 1)
        try connection.publish("mesh.metrics.mesh-registry.registry-1", payload: impostor.serializedBytes())
        let rejected = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            let text = (try? LocalHTTP.request("GET", host: "127.0.0.1", port: metricsPort, path: "/metrics"))?.text ?? ""
            let base = #"mesh_collector_snapshots_rejected_total{instance="collector-1",service="mesh-metrics-collector","#
            return text.contains(base + #"reason="malformed"} 3"#) && text.contains(base + #"reason="identity"} 1"#)
        }
        #expect(rejected, "rejections not counted: \(processes["collector-1"]!.logTail())")
        #expect(processes["collector-1"]!.isRunning)
        #expect(!processes["collector-1"]!.logTail().contains("someone-else"))

        // A `fail` agent answers "reject" with an error (the worker counts outcome=error).
        let js = try connection.jetStream()
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) { (try? js.keyValue("mesh_agents")) != nil }
        var record = AgentRecord()
        record.spec = AgentSpec(id: "failing-1", kind: "fail", generation: 1, config: Array("{}".utf8))
        _ = try js.keyValue("mesh_agents").put("failing-1", record.serializedBytes())
        let actions = ActionClient(connection: connection, subjects: subjects, shardMap: try ShardMap())
        let agent = try AgentID("failing-1")
        let answering = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            (try? await actions.act(agent, action: "echo", payload: [1], timeout: .seconds(2), idempotent: true)) != nil
        }
        #expect(answering, "the fail agent never answered: \(processes["worker-1"]!.logTail())")
        #expect(seen.withLock { $0.isEmpty }, "an alert fired before any failure")

        // Inject failures (in the background, until told to stop) until both collectors fire.
        let collectors: Set<String> = ["collector-1", "collector-2"]
        func nodes(_ state: String) -> Set<String> {
            seen.withLock { events in Set(events.filter { $0.type == "test_action_errors" && $0.attributes["state"] == state }.map(\.nodeId)) }
        }
        let injecting = Task {
            while !Task.isCancelled {
                _ = try? await actions.act(agent, action: "reject", payload: [], timeout: .seconds(2))
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        defer { injecting.cancel() }
        let fired = await TestEnvironment.waitUntil(timeout: .seconds(30)) { nodes("firing") == collectors }
        #expect(fired, "firing events from \(nodes("firing")): \(processes["collector-2"]!.logTail())")
        let event = try #require(seen.withLock { events in events.first { $0.type == "test_action_errors" && $0.attributes["state"] == "firing" } })
        #expect(event.domain == "alert")
        #expect(event.attributes["severity"] == "critical")
        let listed = try await metrics.alerts()
        #expect(listed.contains { $0.rule == "test_action_errors" && $0.state == "firing" }, "\(listed)")

        // The gateway lists it too (viewer route; the bootstrap key is an admin key).
        let key = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let alertsResponse = try LocalHTTP.request(
            "GET", host: "127.0.0.1", port: gatewayPort, path: "/api/v1/alerts", headers: [("Authorization", "Bearer \(key)")])
        #expect(alertsResponse.status == 200, "\(alertsResponse.text)")
        #expect(alertsResponse.text.contains(#""rule":"test_action_errors""#) && alertsResponse.text.contains(#""state":"firing""#))
        let summaryResponse = try LocalHTTP.request(
            "GET", host: "127.0.0.1", port: gatewayPort, path: "/api/v1/metrics/summary?minutes=1", headers: [("Authorization", "Bearer \(key)")])
        #expect(summaryResponse.status == 200, "\(summaryResponse.text)")
        let summary = try await metrics.summary(minutes: 1)
        #expect(summary.actionsPerSecond > 0)
        #expect(summary.actionErrorRate > 0)
        #expect(Set(summary.processes.map(\.service)) == Set(expected.map(\.0)))
        #expect(summary.processes.filter { $0.service == "mesh-metrics-collector" }.count == 2)
        #expect(summary.firingAlerts >= 1)
        let badSeries = try LocalHTTP.request(
            "GET", host: "127.0.0.1", port: gatewayPort, path: "/api/v1/metrics/series?name=9bad", headers: [("Authorization", "Bearer \(key)")])
        #expect(badSeries.status == 400)
        let series = try await metrics.series(MetricSeriesRequest(name: "mesh_actions_total", minutes: 1, groupBy: "series"))
        #expect(series.series.contains { $0.labels["outcome"] == "error" && $0.points.contains { $0.value > 0 } })

        // Failures stop: the rate over the 2 s window falls to zero and the alert resolves on
        // both collectors.
        injecting.cancel()
        _ = await injecting.value
        let resolved = await TestEnvironment.waitUntil(timeout: .seconds(30)) { nodes("resolved") == collectors }
        #expect(resolved, "resolved events from \(nodes("resolved")): \(processes["collector-1"]!.logTail())")
        let afterwards = try await metrics.alerts(includeResolved: true)
        #expect(!afterwards.contains { $0.state == "firing" })
        #expect(afterwards.contains { $0.rule == "test_action_errors" && $0.state == "resolved" && $0.resolvedAtUnixMs >= $0.firedAtUnixMs })

        // Raw points reached PostgreSQL (written by the lease holder, the first collector).
        let store = Store(configuration: StoreConfiguration(connectionString: postgres.connectionString), logger: Logger(label: "test"))
        defer { store.close() }
        var rows: Int64 = 0
        let written = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            rows = (try? await store.query(
                "SELECT count(*) AS n FROM metric_points WHERE service = 'mesh-agent-worker' AND name = 'mesh_actions_total'"
            ).first?.decode("n", Int64.self)) ?? 0
            return rows > 0
        }
        #expect(written, "no metric_points rows: \(processes["collector-1"]!.logTail())")
        // The maintenance job rolls raw points up into hourly and daily rows.
        var rollups: (hourly: Int64, daily: Int64) = (0, 0)
        let rolledUp = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            let counts = try? await store.query(
                """
                SELECT (SELECT count(*) FROM metric_rollups_hourly WHERE name = 'mesh_actions_total') AS hourly,
                       (SELECT count(*) FROM metric_rollups_daily WHERE name = 'mesh_actions_total') AS daily
                """
            ).first
            rollups = ((try? counts?.decode("hourly", Int64.self)) ?? 0, (try? counts?.decode("daily", Int64.self)) ?? 0)
            return rollups.hourly > 0 && rollups.daily > 0
        }
        #expect(rolledUp, "rollups \(rollups): \(processes["collector-1"]!.logTail())")
        // An hourly row sums its raw points' increases (raw points keep arriving after the
        // last rollup run, so the raw sum can only be larger).
        let sums = try #require(
            try await store.query(
                """
                SELECT (SELECT sum(count) FROM metric_points WHERE name = 'mesh_actions_total') AS raw,
                       (SELECT sum(count) FROM metric_rollups_hourly WHERE name = 'mesh_actions_total') AS hourly
                """
            ).first)
        let rawSum = try sums.decode("raw", Double.self)
        let hourlySum = try sums.decode("hourly", Double.self)
        #expect(hourlySum > 0 && hourlySum <= rawSum, "hourly \(hourlySum) raw \(rawSum)")
        func holder() async -> String? {
            try? await store.query("SELECT holder FROM metric_rollup_lease").first?.decode("holder", String.self)
        }
        let first = await holder()
        #expect(first == "collector-1")
        // The second collector tried the lease and wrote nothing (the cluster view shows it).
        var view = ""
        let secondIdle = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            view = (try? LocalHTTP.request("GET", host: "127.0.0.1", port: metricsPort, path: "/metrics"))?.text ?? ""
            return view.contains(#"mesh_collector_rollup_writer{instance="collector-2",service="mesh-metrics-collector"} 0"#)
                && view.contains(#"mesh_collector_rollup_writer{instance="collector-1",service="mesh-metrics-collector"} 1"#)
        }
        #expect(secondIdle, "\(view.split(separator: "\n").filter { $0.contains("rollup") })")
        #expect(view.contains(#"mesh_collector_rollup_points_written_total{instance="collector-2",service="mesh-metrics-collector"} 0"#))

        // The first collector stops: the second takes the lease over once it expires (3 s).
        _ = await processes["collector-1"]!.stop(signal: SIGTERM, timeout: .seconds(5))
        let handedOver = await TestEnvironment.waitUntil(timeout: .seconds(30)) { await holder() == "collector-2" }
        let current = await holder()
        #expect(handedOver, "lease held by \(current ?? "nobody"): \(processes["collector-2"]!.logTail())")

        // Without a collector the gateway answers 503 with the error shape.
        _ = await processes["collector-2"]!.stop(signal: SIGTERM, timeout: .seconds(5))
        let unavailable = try LocalHTTP.request(
            "GET", host: "127.0.0.1", port: gatewayPort, path: "/api/v1/alerts", headers: [("Authorization", "Bearer \(key)")], timeoutMs: 10_000)
        #expect(unavailable.status == 503, "\(unavailable.text)")
        #expect(unavailable.text.contains(#""code":"unavailable""#))
    }

    /// A bad rules file or option stops the collector at start, naming the problem.
    @Test func badRulesAndOptionsAreRejectedAtStart() async throws {
        let directory = try TestEnvironment.makeTempDirectory(prefix: "collector-bad")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rules = "\(directory)/rules.yml"
        try "rules:\n  - {name: slow, expr: {type: quantile, metric: mesh_action_duration}, threshold: 1, for: 5 minutes}\n"
            .write(toFile: rules, atomically: true, encoding: .utf8)
        for (arguments, fragment) in [
            (["--alert-rules", rules], "rule 1 (slow): `for` must be a duration"),
            (["--alert-rules", "\(directory)/missing.yml"], "cannot be read"),
            (["--series-step-ms", "10"], "--series-step-ms"),
            (["--forget-after-ms", "1000", "--stale-after-ms", "5000"], "--forget-after-ms"),
        ] {
            let child = try ChildProcess(
                executable: try MeshBinaries.path("mesh-metrics-collector"), arguments: arguments, logPath: "\(directory)/out.log")
            let exited = await TestEnvironment.waitUntil(timeout: .seconds(10)) { !child.isRunning }
            #expect(exited)
            #expect(await child.stop() != 0)
            #expect(child.logTail().contains(fragment), "missing \(fragment) in: \(child.logTail())")
        }
    }
}
