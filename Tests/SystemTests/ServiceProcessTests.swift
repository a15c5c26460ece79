import Foundation
import LocalServers
import Logging
import MeshCore
import MeshProto
import MeshTesting
import Nats
import NatsMicro
import Synchronization
import Testing

/// The five service executables, started as real processes against a real nats-server and
/// PostgreSQL: each starts, is discovered, publishes, logs JSON and stops on SIGTERM.
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct ServiceProcessTests {
    static let services: [(ServiceName, String)] = [
        (.registry, "registry-1"), (.supervisor, "supervisor-1"), (.agentWorker, "worker-1"), (.gateway, "gateway-1"),
        (.metricsCollector, "collector-1"),
    ]

    @Test func everyServiceStartsIsDiscoveredPublishesAndStopsOnSigterm() async throws {
        let nats = try await NatsServer.start()
        defer { nats.stop() }
        let postgres = try await PostgresServer.start()
        defer { postgres.stop() }
        let logs = try TestEnvironment.makeTempDirectory(prefix: "svc-logs")
        defer { try? FileManager.default.removeItem(atPath: logs) }

        var options = NatsOptions()
        options.servers = [nats.url]
        let client = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        defer { client.close() }
        let snapshots = try client.subscribe("mesh.metrics.>", queue: nil, bufferSize: 1_000)
        let heartbeats = try client.subscribe("mesh.node.*.hb", queue: nil, bufferSize: 1_000)
        try client.flush(timeout: .seconds(2))

        let gatewayMetricsPort = try TestEnvironment.freePort()
        var children: [String: ChildProcess] = [:]
        for (service, id) in Self.services {
            var environment = [
                "MESH_NATS_URL": nats.url, "MESH_POSTGRES_URL": postgres.connectionString, "MESH_INSTANCE_ID": id,
                "MESH_SNAPSHOT_INTERVAL_MS": "200", "MESH_LOG_LEVEL": "info", "MESH_LOG_FORMAT": "json",
            ]
            if service == .gateway { environment["MESH_METRICS_PORT"] = String(gatewayMetricsPort) }
            children[id] = try ChildProcess(
                executable: try MeshBinaries.path(service.rawValue), arguments: [], logPath: "\(logs)/\(id).log", environment: environment)
        }
        defer { children.values.forEach { $0.kill9() } }

        // Discovery: every instance answers PING, INFO and STATS.
        let expected = Set(Self.services.map(\.1))
        let discovered = try await TestEnvironment.waitUntil(timeout: .seconds(60)) {
            let ids = Set(try await MicroDiscovery.ping(client, window: .milliseconds(200)).map(\.id))
            return ids == expected
        }
        #expect(discovered, "not all services answered discovery: \(children.mapValues { $0.logTail(maxBytes: 500) })")
        let infos = try await MicroDiscovery.info(client, window: .milliseconds(300))
        #expect(Set(infos.map(\.name)) == Set(ServiceName.allCases.map(\.rawValue)))
        #expect(infos.allSatisfy { $0.version == MeshVersion.current && !$0.description.isEmpty })
        let stats = try await MicroDiscovery.stats(client, window: .milliseconds(300))
        #expect(Set(stats.map(\.id)) == expected)

        // A metric snapshot from every instance, and worker heartbeats.
        var snapshotFrom: Set<String> = []
        for await message in snapshots {
            let snapshot = try MetricSnapshot(serializedBytes: message.payload)
            #expect(message.headers[MeshHeader.messageType] == MetricSnapshot.messageType.rawValue)
            #expect(message.subject == "mesh.metrics.\(snapshot.service).\(snapshot.instance)")
            #expect(snapshot.gauges.contains { $0.name == "mesh_process_resident_memory_bytes" && $0.value > 0 })
            snapshotFrom.insert(snapshot.instance)
            if snapshotFrom == expected { break }
        }
        #expect(snapshotFrom == expected)
        for await message in heartbeats {
            let beat = try NodeHeartbeat(serializedBytes: message.payload)
            #expect(message.subject == "mesh.node.worker-1.hb")
            #expect(beat.nodeId == "worker-1")
            #expect(beat.capacity == 100)
            #expect(beat.sequence >= 1)
            break
        }

        // The optional /metrics and /health port.
        let metrics = try LocalHTTP.get(host: "127.0.0.1", port: gatewayMetricsPort, path: "/metrics")
        #expect(metrics.status == 200)
        let exposition = metrics.text
        #expect(try LocalHTTP.get(host: "127.0.0.1", port: gatewayMetricsPort, path: "/health").status == 200)
        #expect(try LocalHTTP.get(host: "127.0.0.1", port: gatewayMetricsPort, path: "/nope").status == 404)
        #expect(exposition.contains("mesh_process_resident_memory_bytes"))
        #expect(exposition.contains("mesh_metric_snapshots_published_total"))

        // SIGTERM: every service exits 0, promptly.
        var shutdownTimes: [String: Duration] = [:]
        for (_, id) in Self.services {
            let child = children[id]!
            let start = ContinuousClock.now
            let status = await child.stop(signal: SIGTERM, timeout: .seconds(10))
            shutdownTimes[id] = ContinuousClock.now - start
            #expect(status == 0, "\(id) did not exit cleanly: \(child.logTail(maxBytes: 1_000))")
        }
        print("shutdown after SIGTERM: \(shutdownTimes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        #expect(shutdownTimes.values.allSatisfy { $0 < .seconds(1) }, "a service took 1 s or more to stop: \(shutdownTimes)")

        // Logs are JSON lines with level, label and message, and say they started and stopped.
        for (service, id) in Self.services {
            let text = try String(contentsOfFile: "\(logs)/\(id).log", encoding: .utf8)
            let lines = text.split(separator: "\n")
            #expect(!lines.isEmpty)
            for line in lines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["level"] is String && object?["msg"] is String, "not a JSON log line: \(line)")
                #expect(object?["label"] as? String == service.loggerLabel)
            }
            #expect(text.contains(#""msg":"started""#) && text.contains(#""msg":"stopped""#))
        }
    }

    @Test func invalidConfigurationIsRejectedWithAClearMessage() async throws {
        let logs = try TestEnvironment.makeTempDirectory(prefix: "svc-bad")
        defer { try? FileManager.default.removeItem(atPath: logs) }
        for (service, arguments, fragment) in [
            ("mesh-registry", ["--instance-id", "Bad.Id"], "[a-z0-9][a-z0-9_-]{0,62}"), ("mesh-registry", ["--nats-url", "http://x"], "nats://"),
            ("mesh-registry", ["--metrics-port", "99999"], "--metrics-port"),
            ("mesh-supervisor", ["--heartbeat-probe", "sometimes"], "--heartbeat-probe must be on or off"),
        ] {
            let child = try ChildProcess(executable: try MeshBinaries.path(service), arguments: arguments, logPath: "\(logs)/out.log")
            let exited = await TestEnvironment.waitUntil(timeout: .seconds(10)) { !child.isRunning }
            #expect(exited)
            #expect(await child.stop() != 0)
            #expect(child.logTail().contains(fragment), "missing \(fragment) in: \(child.logTail())")
        }
    }
}
