import Foundation
import Logging
import MeshTesting
import Nats
import NatsMicro
import Testing

@Suite(.enabled(if: TestEnvironment.natsAvailable))
struct MicroServiceTests {
    let logger = Logger(label: "test.micro")

    func connect(_ server: NatsServer) async throws -> NatsConnection {
        var options = NatsOptions()
        options.servers = [server.url]
        options.name = "micro-test"
        return try await NatsConnection.connect(options, logger: logger)
    }

    @Test func answersPingInfoAndStatsOnAllSubjectForms() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let service = try await connect(server)
        let client = try await connect(server)
        defer {
            service.close()
            client.close()
        }
        let micro = try MicroService(
            connection: service,
            config: MicroServiceConfig(name: "mesh-registry", version: "0.1.0", id: "registry-1", description: "directory", metadata: ["k": "v"]),
            logger: logger)
        defer { micro.stop() }
        let endpoint = try micro.addEndpoint(name: "get", subject: "test.reg.get", queueGroup: "registry") { request in
            if request.message.payload == Array("fail".utf8) {
                request.respondError(code: 400, description: "bad request")
            } else {
                request.respond(payload: request.message.payload)
            }
        }
        _ = endpoint
        try service.flush(timeout: .seconds(2))

        for subject in ["$SRV.PING", "$SRV.PING.mesh-registry", "$SRV.PING.mesh-registry.registry-1"] {
            let reply = try await client.request(subject, payload: [], timeout: .seconds(2))
            let ping = try MicroJSON.decode(MicroPingResponse.self, from: reply.payload)
            #expect(ping.type == "io.nats.micro.v1.ping_response")
            #expect(ping.name == "mesh-registry")
            #expect(ping.id == "registry-1")
            #expect(ping.version == "0.1.0")
            #expect(ping.metadata == ["k": "v"])
        }

        let info = try MicroJSON.decode(
            MicroInfoResponse.self, from: try await client.request("$SRV.INFO.mesh-registry", payload: [], timeout: .seconds(2)).payload)
        #expect(info.type == "io.nats.micro.v1.info_response")
        #expect(info.description == "directory")
        #expect(info.endpoints == [MicroEndpointInfo(name: "get", subject: "test.reg.get", queueGroup: "registry", metadata: [:])])

        // Two good requests and one failing one.
        _ = try await client.request("test.reg.get", payload: Array("a".utf8), timeout: .seconds(2))
        _ = try await client.request("test.reg.get", payload: Array("b".utf8), timeout: .seconds(2))
        let failed = try await client.request("test.reg.get", payload: Array("fail".utf8), timeout: .seconds(2))
        #expect(failed.headers["Nats-Service-Error-Code"] == "400")
        #expect(failed.headers["Nats-Service-Error"] == "bad request")

        let statsReply = try await client.request("$SRV.STATS.mesh-registry.registry-1", payload: [], timeout: .seconds(2))
        let stats = try MicroJSON.decode(MicroStatsResponse.self, from: statsReply.payload)
        #expect(stats.type == "io.nats.micro.v1.stats_response")
        #expect(stats.endpoints.count == 1)
        #expect(stats.endpoints[0].numRequests == 3)
        #expect(stats.endpoints[0].numErrors == 1)
        #expect(stats.endpoints[0].lastError == "400:bad request")
        #expect(stats.endpoints[0].processingTime > 0)
        #expect(ISO8601DateFormatter.withFractions.date(from: stats.started) != nil)

        // The raw JSON uses micro's snake_case keys.
        let raw = try JSONSerialization.jsonObject(with: Data(statsReply.payload)) as? [String: Any]
        let endpoints = raw?["endpoints"] as? [[String: Any]]
        #expect(endpoints?.first?["num_requests"] as? Int == 3)
        #expect(endpoints?.first?["queue_group"] as? String == "registry")
    }

    @Test func discoveryGathersEveryInstanceAndIgnoresOtherNames() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let connection = try await connect(server)
        defer { connection.close() }
        let services = try (1...3).map { index in
            try MicroService(
                connection: connection, config: MicroServiceConfig(name: "mesh-agent-worker", version: "1.2.3", id: "worker-\(index)"),
                logger: logger)
        }
        let other = try MicroService(connection: connection, config: MicroServiceConfig(name: "other", version: "1.0.0", id: "x"), logger: logger)
        defer { (services + [other]).forEach { $0.stop() } }
        try connection.flush(timeout: .seconds(2))

        let all = try await MicroDiscovery.ping(connection, window: .milliseconds(300))
        #expect(Set(all.map(\.id)) == ["worker-1", "worker-2", "worker-3", "x"])
        let workers = try await MicroDiscovery.stats(connection, name: "mesh-agent-worker", window: .milliseconds(300))
        #expect(Set(workers.map(\.id)) == ["worker-1", "worker-2", "worker-3"])

        services[0].stop()
        let afterStop = try await MicroDiscovery.ping(connection, name: "mesh-agent-worker", window: .milliseconds(300))
        #expect(Set(afterStop.map(\.id)) == ["worker-2", "worker-3"])
    }

    @Test(arguments: [
        MicroServiceConfig(name: "bad name", version: "1.0.0", id: "a"), MicroServiceConfig(name: "ok", version: "1.0", id: "a"),
        MicroServiceConfig(name: "ok", version: "1.0.0", id: "a.b"), MicroServiceConfig(name: "", version: "1.0.0", id: "a"),
    ])
    func rejectsInvalidIdentity(_ config: MicroServiceConfig) async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let connection = try await connect(server)
        defer { connection.close() }
        #expect(throws: MicroError.self) { try MicroService(connection: connection, config: config, logger: logger) }
    }
}

extension ISO8601DateFormatter {
    static var withFractions: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
