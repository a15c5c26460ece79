import Foundation
import LocalServers
import MeshCore
import MeshTesting
import Store
import Logging
import Testing

/// The HTTP gateway as operators use it: real `mesh-gateway` processes in front of a real
/// registry, supervisor and worker, on a real nats-server and PostgreSQL. Every endpoint's
/// happy path and its errors: 400, 401, 403, 404, 409, 413, 429 (+ Retry-After), 503.
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct GatewayHTTPTests {
    final class Mesh: @unchecked Sendable {
        let nats: NatsServer
        let postgres: PostgresServer
        let directory: String
        var processes: [String: ChildProcess] = [:]

        init() async throws {
            nats = try await NatsServer.start()
            postgres = try await PostgresServer.start()
            directory = try TestEnvironment.makeTempDirectory(prefix: "gateway")
        }

        func start(_ service: ServiceName, id: String, extra: [String: String] = [:]) throws {
            var environment = [
                "MESH_NATS_URL": nats.url, "MESH_INSTANCE_ID": id, "MESH_LOG_LEVEL": "info", "MESH_POSTGRES_URL": postgres.connectionString,
            ]
            environment.merge(extra) { _, new in new }
            processes[id] = try ChildProcess(
                executable: try MeshBinaries.path(service.rawValue), arguments: [], logPath: "\(directory)/\(id).log", environment: environment)
        }

        /// Starts a gateway on a free port; returns the port.
        func startGateway(id: String, extra: [String: String] = [:]) throws -> Int {
            let port = try TestEnvironment.freePort()
            var environment = ["MESH_GATEWAY_PORT": String(port)]
            environment.merge(extra) { _, new in new }
            try start(.gateway, id: id, extra: environment)
            return port
        }

        func stop() {
            for process in processes.values where process.isRunning { kill(process.pid, SIGTERM) }
            for process in processes.values { process.stop(signal: SIGTERM, timeout: .seconds(5)) }
            nats.stop()
            postgres.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// A small client of one gateway.
    struct Client {
        let port: Int
        var key: String?

        func call(
            _ method: String, _ path: String, json: Any? = nil, body: [UInt8]? = nil, headers: [(String, String)] = [], key: String? = nil,
            timeoutMs: Int = 20_000
        ) throws -> LocalHTTP.Response {
            var headers = headers
            if let key = key ?? self.key { headers.append(("Authorization", "Bearer \(key)")) }
            var bytes = body ?? []
            if let json {
                bytes = Array(try JSONSerialization.data(withJSONObject: json))
                headers.append(("Content-Type", "application/json"))
            }
            return try LocalHTTP.request(method, host: "127.0.0.1", port: port, path: path, headers: headers, body: bytes, timeoutMs: timeoutMs)
        }

        func object(_ response: LocalHTTP.Response) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        }

        /// The `error.code` of an error answer.
        func code(_ response: LocalHTTP.Response) -> String? {
            (object(response)["error"] as? [String: Any])?["code"] as? String
        }
    }

    /// Runs `meshctl` and returns its exit status with stdout and stderr together.
    static func meshctl(_ arguments: [String], in directory: String) async throws -> (status: Int32?, output: String) {
        let out = "\(directory)/meshctl-\(UUID().uuidString).out"
        let child = try ChildProcess(executable: try MeshBinaries.path("meshctl"), arguments: arguments, logPath: out)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) { !child.isRunning }
        let status = await child.stop()
        return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    /// The answers in `bytes` (several on one connection), each with a `Content-Length`.
    static func answers(in bytes: [UInt8]) -> [(status: Int, body: String)] {
        var answers: [(status: Int, body: String)] = []
        var rest = bytes[...]
        while let end = rest.firstRange(of: Array("\r\n\r\n".utf8)) {
            let lines = String(decoding: rest[..<end.lowerBound], as: UTF8.self).split(separator: "\r\n")
            let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? -1
            let length = lines.dropFirst().first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            guard rest[end.upperBound...].count >= length else { break }
            answers.append((status, String(decoding: rest[end.upperBound..<end.upperBound + length], as: UTF8.self)))
            rest = rest[(end.upperBound + length)...]
        }
        return answers
    }

    /// The complete frames of a Server-Sent Events body: id, event name and decoded data.
    static func sseFrames(_ text: String) -> [(id: UInt64, event: String, data: [String: Any])] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var id: UInt64?
            var event = ""
            var data: [String: Any] = [:]
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = UInt64(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") {
                    data = (try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8))) as? [String: Any] ?? [:]
                }
            }
            guard let id, !event.isEmpty else { return nil }
            return (id, event, data)
        }
    }

    @Test func everyEndpointAndItsErrorsThroughARealGateway() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        let keyFile = "\(mesh.directory)/admin.key"
        try mesh.start(.registry, id: "registry-1")
        try mesh.start(.supervisor, id: "supervisor-1")
        try mesh.start(.agentWorker, id: "worker-1")
        let port = try mesh.startGateway(
            id: "gateway-1", extra: ["MESH_GATEWAY_BOOTSTRAP_KEY_FILE": keyFile, "MESH_GATEWAY_MAX_BODY_BYTES": "4096"])
        var api = Client(port: port)
        let ready = await TestEnvironment.waitUntil(timeout: .seconds(60)) { (try? api.call("GET", "/ready"))?.status == 200 }
        #expect(ready, "gateway not ready: \(mesh.processes["gateway-1"]!.logTail())")
        guard ready else { return }

        // Public endpoints.
        #expect(try api.call("GET", "/health").status == 200)
        let openAPI = try api.call("GET", "/openapi.json")
        #expect(openAPI.status == 200 && api.object(openAPI)["openapi"] as? String == "3.1.0")
        let unknown = try api.call("GET", "/no/such/path")
        #expect(unknown.status == 404 && api.code(unknown) == "not_found", "\(unknown.text)")

        // The bootstrap admin key was written 0600; 401 without a key or with an unknown one.
        let admin = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let anonymous = try api.call("GET", "/api/v1/agents")
        #expect(anonymous.status == 401 && api.code(anonymous) == "unauthenticated")
        #expect(try api.call("GET", "/api/v1/agents", key: "mesh_" + String(repeating: "0", count: 64)).status == 401)
        #expect(try api.call("GET", "/api/v1/agents", headers: [("Authorization", "Basic Zm9vOmJhcg==")]).status == 401)

        // Keys: admin creates a viewer and an operator key (secrets shown once).
        api.key = admin
        let viewerCreated = try api.call("POST", "/api/v1/keys", json: ["role": "viewer", "name": "dashboard"])
        #expect(viewerCreated.status == 201, "\(viewerCreated.text)")
        let viewer = try #require(api.object(viewerCreated)["secret"] as? String)
        let operatorCreated = try api.call("POST", "/api/v1/keys", json: ["role": "operator", "name": "ci"])
        let operatorKey = try #require(api.object(operatorCreated)["secret"] as? String)
        let operatorID = try #require(api.object(operatorCreated)["id"] as? String)
        #expect(try api.call("POST", "/api/v1/keys", json: ["role": "root"]).status == 400)
        let keyList = try api.call("GET", "/api/v1/keys")
        #expect(keyList.status == 200 && !keyList.text.contains(viewer) && !keyList.text.contains(operatorKey))
        #expect((api.object(keyList)["items"] as? [[String: Any]])?.count == 3)

        // 403: a role too low.
        let forbidden = try api.call("POST", "/api/v1/agents", json: ["id": "x", "kind": "echo"], key: viewer)
        #expect(forbidden.status == 403 && api.code(forbidden) == "permission_denied")
        #expect(try api.call("GET", "/api/v1/keys", key: operatorKey).status == 403)

        // Agents: create, duplicates, bad ids, bad bodies.
        api.key = operatorKey
        let created = try api.call("POST", "/api/v1/agents", json: ["id": "counter-1", "kind": "counter", "labels": ["team": "search"]])
        #expect(created.status == 201, "\(created.text)")
        #expect(created.headers["location"] == "/api/v1/agents/counter-1")
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "echo-1", "kind": "echo", "labels": ["team": "ads"]]).status == 201)
        let duplicate = try api.call("POST", "/api/v1/agents", json: ["id": "counter-1", "kind": "counter"])
        #expect(duplicate.status == 409 && api.code(duplicate) == "already_exists")
        let badID = try api.call("POST", "/api/v1/agents", json: ["id": "Bad.Id", "kind": "echo"])
        #expect(badID.status == 400 && api.code(badID) == "invalid_id", "\(badID.text)")
        #expect(api.code(try api.call("GET", "/api/v1/agents/Bad.Id")) == "invalid_id")
        #expect(try api.call("POST", "/api/v1/agents", body: Array("not json".utf8)).status == 400)
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "y", "kind": "echo", "colour": "red"]).status == 400)
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "y", "kind": "no-such-kind"]).status == 400)
        #expect(try api.call("GET", "/api/v1/agents?limit=0").status == 400)

        // Get, 404, list with a selector and cursor pagination.
        let got = try api.call("GET", "/api/v1/agents/counter-1", key: viewer)
        #expect(got.status == 200 && api.object(got)["kind"] as? String == "counter")
        let revision = try #require(api.object(got)["revision"] as? Int)
        let missing = try api.call("GET", "/api/v1/agents/no-such-agent")
        #expect(missing.status == 404 && api.code(missing) == "not_found")
        let selected = api.object(try api.call("GET", "/api/v1/agents?selector=team%3Dsearch", key: viewer))
        #expect((selected["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["counter-1"])
        let first = api.object(try api.call("GET", "/api/v1/agents?limit=1"))
        #expect((first["items"] as? [[String: Any]])?.first?["id"] as? String == "counter-1")
        let cursor = try #require(first["next_cursor"] as? String)
        let encodedCursor = cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor
        let second = api.object(try api.call("GET", "/api/v1/agents?limit=1&cursor=\(encodedCursor)"))
        #expect((second["items"] as? [[String: Any]])?.first?["id"] as? String == "echo-1")

        // Update with compare-and-set: a stale revision is 409, the current one succeeds.
        let stale = try api.call("PUT", "/api/v1/agents/counter-1", json: ["kind": "counter", "labels": ["team": "x"], "revision": revision + 100])
        #expect(stale.status == 409 && api.code(stale) == "conflict", "\(stale.text)")
        let updated = try api.call("PUT", "/api/v1/agents/counter-1", json: ["kind": "counter", "labels": ["team": "search", "tier": "gold"], "revision": revision])
        #expect(updated.status == 200, "\(updated.text)")
        #expect((api.object(updated)["labels"] as? [String: String])?["tier"] == "gold")
        #expect(try api.call("PUT", "/api/v1/agents/counter-1", json: ["id": "other", "kind": "counter"]).status == 400)
        #expect(try api.call("PUT", "/api/v1/agents/no-such-agent", json: ["kind": "counter"]).status == 404)

        // Actions: wait until the agent is placed, then invoke with a payload.
        var reply: LocalHTTP.Response?
        let answered = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            reply = try? api.call("POST", "/api/v1/agents/counter-1/actions/add?timeout_ms=2000", json: ["by": 2])
            return reply?.status == 200
        }
        #expect(answered, "\(reply?.text ?? "no answer")")
        let added = try api.call("POST", "/api/v1/agents/counter-1/actions/add", json: ["by": 3])
        #expect(added.status == 200 && added.text == #"{"value":5}"#, "\(added.status) \(added.text)")
        // echo-1 starts on its own schedule: wait until it is placed too.
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            (try? api.call("POST", "/api/v1/agents/echo-1/actions/say?timeout_ms=2000", body: Array("x".utf8)))?.status == 200
        }
        #expect(try api.call("POST", "/api/v1/agents/echo-1/actions/say", body: Array("hi".utf8)).status == 200)
        #expect(try api.call("POST", "/api/v1/agents/counter-1/actions/add", json: ["by": 1], key: viewer).status == 403)
        let noAgent = try api.call("POST", "/api/v1/agents/no-such-agent/actions/get?timeout_ms=1000")
        #expect([404, 503, 504].contains(noAgent.status) && api.code(noAgent) != nil, "\(noAgent.text)")
        #expect(try api.call("POST", "/api/v1/agents/counter-1/actions/add?timeout_ms=abc").status == 400)
        // Requests pipelined on one connection — actions and /health answered on the event
        // loop, the others by the router — are answered in order; `Connection: close` ends
        // the connection after its answer, whoever gives it.
        func raw(_ method: String, _ path: String, key: String?, body: String = "", close: Bool = false) -> [UInt8] {
            var head = "\(method) \(path) HTTP/1.1\r\nHost: gateway\r\n"
            if let key { head += "Authorization: Bearer \(key)\r\n" }
            if method == "POST" { head += "Content-Length: \(body.utf8.count)\r\n" }
            if close { head += "Connection: close\r\n" }
            return Array((head + "\r\n" + body).utf8)
        }
        let say = "/api/v1/agents/echo-1/actions/say"
        let pipelined: [(request: [UInt8], status: Int, body: String?)] = [
            (raw("POST", say, key: operatorKey, body: "one"), 200, "one"),
            (raw("GET", "/api/v1/agents/echo-1", key: viewer), 200, nil),
            (raw("POST", say + "?timeout_ms=2000", key: operatorKey, body: "two"), 200, "two"),
            (raw("GET", "/health", key: nil), 200, nil),
            (raw("POST", say, key: viewer, body: "x"), 403, nil),
            (raw("POST", say, key: operatorKey, body: "three"), 200, "three"),
            (raw("GET", "/no/such/path", key: nil), 404, nil),
            (raw("POST", "/api/v1/agents/no-such-agent/actions/say?timeout_ms=1000", key: operatorKey), 404, nil),
            (raw("POST", say + "?timeout_ms=abc", key: operatorKey), 400, nil),
            (raw("POST", say, key: operatorKey, body: "four", close: true), 200, "four"),
            (raw("GET", "/health", key: nil), 0, nil),  // after the close: never answered
        ]
        // The first request goes alone: the WebSocket upgrade check of a connection's first
        // request drops what is pipelined behind it (router and fast path alike).
        let received = try LocalHTTP.exchange(
            host: "127.0.0.1", port: port, parts: [pipelined[0].request, pipelined.dropFirst().flatMap(\.request)], timeoutMs: 10_000,
            sendNext: { received, _ in !Self.answers(in: received).isEmpty })
        let answers = Self.answers(in: received)
        #expect(answers.map(\.status) == pipelined.map(\.status).filter { $0 > 0 }, "\(String(decoding: received, as: UTF8.self))")
        for (answer, expected) in zip(answers, pipelined) where expected.body != nil {
            #expect(answer.body == expected.body, "\(answer)")
        }

        // An action overrunning its deadline is 504 `timeout`.
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "sleeper", "kind": "work"]).status == 201)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            (try? api.call("POST", "/api/v1/agents/sleeper/actions/sleep?timeout_ms=2000", json: ["ms": 0]))?.status == 200
        }
        let overrun = try api.call("POST", "/api/v1/agents/sleeper/actions/sleep?timeout_ms=300", json: ["ms": 3000])
        #expect(overrun.status == 504 && api.code(overrun) == "timeout", "\(overrun.status) \(overrun.text)")

        // Body limits: a declared length over the limit, and a streamed (chunked) body that
        // grows past it, are both 413.
        let big = Array(repeating: UInt8(ascii: "a"), count: 10_000)
        let tooLarge = try api.call("POST", "/api/v1/agents/echo-1/actions/say", body: big)
        #expect(tooLarge.status == 413 && api.code(tooLarge) == "too_large", "\(tooLarge.text)")
        var chunked: [UInt8] = []
        for _ in 0..<10 { chunked += Array("400\r\n".utf8) + Array(repeating: UInt8(ascii: "b"), count: 1024) + Array("\r\n".utf8) }
        chunked += Array("0\r\n\r\n".utf8)
        let streamed = try LocalHTTP.request(
            "POST", host: "127.0.0.1", port: port, path: "/api/v1/agents/echo-1/actions/say",
            headers: [("Authorization", "Bearer \(operatorKey)"), ("Transfer-Encoding", "chunked")], body: chunked, sendContentLength: false)
        #expect(streamed.status == 413, "\(streamed.status) \(streamed.text)")

        // Timeline from Postgres (written by the registry's mirror), paginated.
        var events: [[String: Any]] = []
        _ = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            guard let response = try? api.call("GET", "/api/v1/agents/counter-1/events", key: viewer) else { return false }
            events = api.object(response)["items"] as? [[String: Any]] ?? []
            return events.count >= 2
        }
        #expect(events.contains { $0["type"] as? String == "created" }, "\(events)")
        let onePage = api.object(try api.call("GET", "/api/v1/agents/counter-1/events?limit=1"))
        let eventCursor = try #require(onePage["next_cursor"] as? String)
        let nextPage = api.object(try api.call("GET", "/api/v1/agents/counter-1/events?limit=1&cursor=\(eventCursor)"))
        let firstID = (onePage["items"] as? [[String: Any]])?.first?["event_id"] as? String
        let secondID = (nextPage["items"] as? [[String: Any]])?.first?["event_id"] as? String
        #expect(firstID != nil && secondID != nil && firstID != secondID)
        #expect(try api.call("GET", "/api/v1/agents/counter-1/events?cursor=garbage!").status == 400)

        // Nodes, from the supervisor leader; drain and undrain (operator).
        var nodes: [String: Any] = [:]
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            guard let response = try? api.call("GET", "/api/v1/nodes", key: viewer) else { return false }
            nodes = api.object(response)
            return (nodes["items"] as? [[String: Any]])?.isEmpty == false
        }
        let worker = (nodes["items"] as? [[String: Any]])?.first { $0["node"] as? String == "worker-1" }
        #expect(worker?["alive"] as? Bool == true && worker?["shards"] as? Int == 64, "\(nodes)")
        #expect(try api.call("POST", "/api/v1/nodes/worker-1/drain", key: viewer).status == 403)
        let drained = try api.call("POST", "/api/v1/nodes/worker-1/drain")
        #expect(drained.status == 200 && (api.object(drained)["node"] as? [String: Any])?["draining"] as? Bool == true, "\(drained.text)")
        #expect(api.object(drained)["candidates"] as? Int == 0)
        let undrained = try api.call("POST", "/api/v1/nodes/worker-1/undrain")
        #expect(undrained.status == 200 && (api.object(undrained)["node"] as? [String: Any])?["drain_requested"] as? Bool == false)
        #expect(try api.call("POST", "/api/v1/nodes/Worker!/drain").status == 400)
        #expect(try api.call("POST", "/api/v1/nodes/no-such-node/drain").status == 404)

        // Live events (SSE): replay from the start of the stream filtered to one agent,
        // resume after an event id, a live-only stream, and bad filters.
        let replay = try LocalHTTP.request(
            "GET", host: "127.0.0.1", port: port, path: "/api/v1/events?since=0&agent=counter-1",
            headers: [("Authorization", "Bearer \(viewer)")], timeoutMs: 5_000,
            stopWhen: { String(decoding: $0, as: UTF8.self).contains("event: agent.updated") })
        #expect(replay.status == 200 && replay.headers["content-type"] == "text/event-stream", "\(replay.status) \(replay.text)")
        let frames = Self.sseFrames(replay.text)
        #expect(frames.first?.event == "agent.created" && frames.allSatisfy { $0.data["agent"] as? String == "counter-1" }, "\(replay.text)")
        #expect(frames.contains { $0.event == "agent.updated" })
        let createdSeq = try #require(frames.first?.id)
        let resumed = try LocalHTTP.request(
            "GET", host: "127.0.0.1", port: port, path: "/api/v1/events?agent=counter-1",
            headers: [("Authorization", "Bearer \(viewer)"), ("Last-Event-ID", String(createdSeq))], timeoutMs: 5_000,
            stopWhen: { String(decoding: $0, as: UTF8.self).contains("\nevent: agent.") })
        let resumedFrames = Self.sseFrames(resumed.text)
        #expect(resumedFrames.first.map { $0.id > createdSeq } == true, "\(resumed.text)")
        #expect(try api.call("GET", "/api/v1/events?domain=Bad!", timeoutMs: 5_000).status == 400)
        #expect(try api.call("GET", "/api/v1/events?since=abc", timeoutMs: 5_000).status == 400)
        #expect(try api.call("GET", "/api/v1/events", key: "mesh_" + String(repeating: "1", count: 64), timeoutMs: 5_000).status == 401)
        let liveOnly = Task.detached {
            try LocalHTTP.request(
                "GET", host: "127.0.0.1", port: port, path: "/api/v1/events?domain=agent&type=deleted",
                headers: [("Authorization", "Bearer \(viewer)")], timeoutMs: 10_000,
                stopWhen: { String(decoding: $0, as: UTF8.self).contains("event: agent.deleted") })
        }
        try await Task.sleep(for: .milliseconds(500))  // the stream is subscribed

        // Delete, then 404.
        #expect(try api.call("DELETE", "/api/v1/agents/echo-1?revision=999999").status == 409)
        #expect(try api.call("DELETE", "/api/v1/agents/echo-1").status == 200)
        #expect(try api.call("GET", "/api/v1/agents/echo-1").status == 404)
        let deletedFrames = Self.sseFrames(try await liveOnly.value.text)
        #expect(deletedFrames.count == 1 && deletedFrames.first?.data["agent"] as? String == "echo-1", "\(deletedFrames)")

        // Metrics count the requests.
        let metrics = try api.call("GET", "/metrics")
        #expect(metrics.status == 200 && metrics.text.contains("mesh_gateway_requests_total"))

        // A second gateway with a tiny rate limit: 429 with Retry-After once the burst is spent.
        let limitedPort = try mesh.startGateway(id: "gateway-2", extra: ["MESH_GATEWAY_RATE_LIMIT": "1", "MESH_GATEWAY_RATE_BURST": "3"])
        let limited = Client(port: limitedPort, key: viewer)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) { (try? limited.call("GET", "/health"))?.status == 200 }
        var statuses: [Int] = []
        var retryAfter: String?
        for _ in 0..<6 {
            let response = try limited.call("GET", "/api/v1/nodes")
            statuses.append(response.status)
            if response.status == 429 {
                retryAfter = response.headers["retry-after"]
                #expect(limited.code(response) == "rate_limited")
            }
        }
        #expect(statuses.prefix(3).allSatisfy { $0 == 200 } && statuses.contains(429), "\(statuses)")
        #expect(retryAfter.flatMap(Int.init).map { $0 >= 1 } == true)

        // meshctl through the gateway: tables and -o json, errors with the gateway's code.
        let gatewayURL = "http://127.0.0.1:\(port)"
        let listed = try await Self.meshctl(["agents", "ls", "--gateway", gatewayURL, "--api-key", viewer, "-o", "json"], in: mesh.directory)
        #expect(listed.status == 0, "\(listed.output)")
        let listedIDs = ((try? JSONSerialization.jsonObject(with: Data(listed.output.utf8))) as? [[String: Any]])?.compactMap { $0["id"] as? String }
        #expect(listedIDs == ["counter-1", "sleeper"], "\(listed.output)")
        let table = try await Self.meshctl(["agents", "get", "counter-1", "--gateway", gatewayURL, "--api-key", viewer], in: mesh.directory)
        #expect(table.status == 0 && table.output.contains("counter"))
        let acted = try await Self.meshctl(
            ["act", "counter-1", "get", "--gateway", gatewayURL, "--api-key", operatorKey, "--timeout-ms", "5000"], in: mesh.directory)
        #expect(acted.status == 0 && acted.output.trimmingCharacters(in: .whitespacesAndNewlines) == #"{"value":5}"#, "\(acted.output)")
        let denied = try await Self.meshctl(["act", "counter-1", "get", "--gateway", gatewayURL, "--api-key", viewer], in: mesh.directory)
        #expect(denied.status != 0 && denied.output.contains("permission_denied"), "\(denied.output)")
        let keysListed = try await Self.meshctl(["keys", "ls", "--gateway", gatewayURL, "--api-key", admin], in: mesh.directory)
        #expect(keysListed.status == 0 && keysListed.output.contains("dashboard") && keysListed.output.contains("ROLE"))

        // Revoking a key: it stops working at once on the gateway that revoked it.
        #expect(try api.call("DELETE", "/api/v1/keys/\(operatorID)", key: admin).status == 200)
        #expect(try api.call("GET", "/api/v1/agents").status == 401)
        #expect(try api.call("DELETE", "/api/v1/keys/\(operatorID)", key: admin).status == 404)

        // The audit log has the failures and the mutations, with key ids and never a secret.
        let store = Store(configuration: StoreConfiguration(connectionString: mesh.postgres.connectionString), logger: Logger(label: "test"))
        defer { store.close() }
        var outcomes: Set<String> = []
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            let rows = (try? await store.query("SELECT outcome FROM audit_log")) ?? []
            outcomes = Set(rows.compactMap { try? $0.decode("outcome", String.self) })
            return outcomes.isSuperset(of: ["ok", "unauthenticated", "forbidden", "failed"])
        }
        #expect(outcomes.isSuperset(of: ["ok", "unauthenticated", "forbidden", "failed"]), "\(outcomes)")
        let mutations = try await store.query(
            "SELECT key_id FROM audit_log WHERE action = 'POST /api/v1/agents' AND outcome = 'ok' AND target IS NULL")
        #expect(mutations.count == 3)  // counter-1, echo-1, sleeper
        let all = try await store.query("SELECT concat_ws(' ', key_id, key_name, action, target, outcome) AS line FROM audit_log")
        #expect(!all.isEmpty)
        for row in all {
            let line: String = try row.decode("line")
            #expect(!line.contains(admin) && !line.contains(viewer) && !line.contains(operatorKey))
        }
        let hashes = try await store.query("SELECT secret_hash FROM api_keys")
        #expect(hashes.count == 3)
        for row in hashes { #expect(try row.decode("secret_hash", String.self).count == 64) }

        // NATS down: API calls answer 503 at once (no hang), /ready says not ready, /health still answers.
        api.key = viewer
        mesh.nats.kill()
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) { (try? api.call("GET", "/ready"))?.status == 503 }
        let down = try api.call("GET", "/api/v1/agents", timeoutMs: 5_000)
        #expect(down.status == 503 && api.code(down) == "unavailable" && down.headers["retry-after"] != nil, "\(down.status) \(down.text)")
        #expect(try api.call("GET", "/api/v1/agents/counter-1", timeoutMs: 5_000).status == 503)
        #expect(try api.call("GET", "/ready", timeoutMs: 5_000).status == 503)
        #expect(try api.call("GET", "/health", timeoutMs: 5_000).status == 200)
    }

    /// Durable tasks through the gateway: submit (idempotent by header or body key), read,
    /// list with filters, cancel, the dead-letter queue and its retry; roles and bad input.
    @Test func durableTasksThroughTheGateway() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        let keyFile = "\(mesh.directory)/admin.key"
        try mesh.start(.registry, id: "registry-1")
        try mesh.start(.supervisor, id: "supervisor-1")
        try mesh.start(.agentWorker, id: "worker-1", extra: ["MESH_TASK_BACKOFF_BASE_MS": "100", "MESH_TASK_BACKOFF_MAX_MS": "500"])
        let port = try mesh.startGateway(id: "gateway-1", extra: ["MESH_GATEWAY_BOOTSTRAP_KEY_FILE": keyFile])
        var api = Client(port: port)
        let ready = await TestEnvironment.waitUntil(timeout: .seconds(60)) { (try? api.call("GET", "/ready"))?.status == 200 }
        #expect(ready, "gateway not ready: \(mesh.processes["gateway-1"]!.logTail())")
        guard ready else { return }
        api.key = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let viewer = try #require(api.object(try api.call("POST", "/api/v1/keys", json: ["role": "viewer"]))["secret"] as? String)
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "echo-1", "kind": "echo"]).status == 201)
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "flaky", "kind": "fail"]).status == 201)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            (try? api.call("POST", "/api/v1/agents/echo-1/actions/say?timeout_ms=1000", body: Array("x".utf8)))?.status == 200
        }

        /// Polls a task until it is over.
        func terminal(_ id: String) async -> [String: Any] {
            var record: [String: Any] = [:]
            _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
                record = (try? api.call("GET", "/api/v1/tasks/\(id)", key: viewer)).map(api.object) ?? [:]
                return ["succeeded", "failed", "expired", "cancelled", "dead_lettered"].contains(record["state"] as? String ?? "")
            }
            return record
        }

        // Submit → 201 with a Location; the history shows the result.
        let submitted = try api.call("POST", "/api/v1/tasks", json: ["agent": "echo-1", "action": "say", "payload": ["hello": "tasks"], "priority": "high"])
        #expect(submitted.status == 201, "\(submitted.text)")
        let taskID = try #require(api.object(submitted)["task_id"] as? String)
        #expect(submitted.headers["location"] == "/api/v1/tasks/\(taskID)" && api.object(submitted)["duplicate"] as? Bool == false)
        let done = await terminal(taskID)
        #expect(done["state"] as? String == "succeeded" && done["result"] as? String == #"{"hello":"tasks"}"#, "\(done)")
        #expect(done["priority"] as? String == "high" && done["attempts"] as? Int == 1 && done["node"] as? String == "worker-1")

        // Idempotency: the same key (header or body) is the same task, answered 200.
        let keyed = try api.call("POST", "/api/v1/tasks", json: ["agent": "echo-1", "action": "say"], headers: [("Idempotency-Key", "order-7")])
        let again = try api.call("POST", "/api/v1/tasks", json: ["agent": "echo-1", "action": "say", "idempotency_key": "order-7"])
        #expect(keyed.status == 201 && again.status == 200 && api.object(again)["duplicate"] as? Bool == true)
        #expect(api.object(keyed)["task_id"] as? String == api.object(again)["task_id"] as? String)
        let disagreeing = try api.call(
            "POST", "/api/v1/tasks", json: ["agent": "echo-1", "action": "say", "idempotency_key": "a"], headers: [("Idempotency-Key", "b")])
        #expect(disagreeing.status == 400)

        // Bad input: 400 with the error shape; a viewer may read but not submit.
        for body: [String: Any] in [
            ["agent": "Bad.Agent", "action": "say"], ["agent": "echo-1"], ["agent": "echo-1", "action": "say", "priority": "urgent"],
            ["agent": "echo-1", "action": "say", "max_attempts": 0], ["agent": "echo-1", "action": "say", "colour": "red"],
            ["agent": "echo-1", "action": "say", "deadline": "tomorrow"], ["agent": "echo-1", "action": ""],
        ] {
            let response = try api.call("POST", "/api/v1/tasks", json: body)
            #expect(response.status == 400 && api.code(response) != nil, "\(body): \(response.status) \(response.text)")
        }
        let oversized = try api.call("POST", "/api/v1/tasks", json: ["agent": "echo-1", "action": "say", "payload": String(repeating: "x", count: 300_000)])
        #expect(oversized.status == 413 && api.code(oversized) == "too_large", "\(oversized.text)")
        #expect(try api.call("POST", "/api/v1/tasks", json: ["agent": "echo-1", "action": "say"], key: viewer).status == 403)
        #expect(try api.call("GET", "/api/v1/tasks", key: "mesh_" + String(repeating: "2", count: 64)).status == 401)
        let badID = try api.call("GET", "/api/v1/tasks/not-a-task")
        #expect(badID.status == 400 && api.code(badID) == "invalid_id")
        let unknown = try api.call("GET", "/api/v1/tasks/00000000-0000-7000-8000-000000000000")
        #expect(unknown.status == 404 && api.code(unknown) == "not_found", "\(unknown.text)")
        #expect(try api.call("GET", "/api/v1/tasks?status=maybe").status == 400)
        #expect(try api.call("GET", "/api/v1/tasks?since=yesterday").status == 400)

        // A task past its deadline is not run.
        let late = try api.call("POST", "/api/v1/tasks", json: ["agent": "echo-1", "action": "say", "deadline": "2001-01-01T00:00:00Z"])
        let expired = await terminal(try #require(api.object(late)["task_id"] as? String))
        #expect(expired["state"] as? String == "expired", "\(expired)")

        // A failing task is dead-lettered after its attempts; retry runs it again.
        let failing = try api.call("POST", "/api/v1/tasks", json: ["agent": "flaky", "action": "reject", "max_attempts": 2])
        let failingID = try #require(api.object(failing)["task_id"] as? String)
        let dead = await terminal(failingID)
        #expect(dead["state"] as? String == "dead_lettered" && dead["attempts"] as? Int == 2, "\(dead)")
        var letters: [[String: Any]] = []
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            letters = (try? api.call("GET", "/api/v1/dead-letters", key: viewer)).map(api.object)?["items"] as? [[String: Any]] ?? []
            return letters.contains { $0["task_id"] as? String == failingID }
        }
        let letter = try #require(letters.first { $0["task_id"] as? String == failingID })
        #expect((letter["error"] as? [String: Any])?["code"] as? String != nil, "\(letter)")
        #expect(try api.call("POST", "/api/v1/dead-letters/\(failingID)/retry", key: viewer).status == 403)
        let retried = try api.call("POST", "/api/v1/dead-letters/\(failingID)/retry")
        #expect(retried.status == 202, "\(retried.text)")
        #expect(try api.call("POST", "/api/v1/dead-letters/00000000-0000-7000-8000-000000000000/retry").status == 404)

        // Cancel: a task waiting behind a slow one ends cancelled.
        let list = api.object(try api.call("GET", "/api/v1/tasks?agent=echo-1&status=succeeded&limit=1", key: viewer))
        #expect((list["items"] as? [[String: Any]])?.count == 1 && list["next_cursor"] is String, "\(list)")
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "slow", "kind": "work"]).status == 201)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            (try? api.call("POST", "/api/v1/agents/slow/actions/sleep?timeout_ms=1000", json: ["ms": 0]))?.status == 200
        }
        _ = try api.call("POST", "/api/v1/tasks", json: ["agent": "slow", "action": "sleep", "payload": ["ms": 3000]])
        let waiting = try api.call("POST", "/api/v1/tasks", json: ["agent": "slow", "action": "sleep", "payload": ["ms": 10]])
        let waitingID = try #require(api.object(waiting)["task_id"] as? String)
        #expect(try api.call("POST", "/api/v1/tasks/\(waitingID)/cancel", key: viewer).status == 403)
        let cancelled = try api.call("POST", "/api/v1/tasks/\(waitingID)/cancel")
        #expect(cancelled.status == 202 && api.object(cancelled)["cancel_requested"] as? Bool == true)
        #expect(await terminal(waitingID)["state"] as? String == "cancelled")
    }
}
