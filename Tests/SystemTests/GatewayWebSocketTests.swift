import Foundation
import LocalServers
import Logging
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Store
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Live events over WebSocket at `/api/v1/events`, through real `mesh-gateway` processes in
/// front of a real registry and supervisor on a real nats-server and PostgreSQL: the upgrade
/// and its refusals (JSON error shape, audit log), events of a created agent, filters,
/// resume from a sequence, client close, gateway shutdown, and the slow-client bound.
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct GatewayWebSocketTests {
    typealias Mesh = GatewayHTTPTests.Mesh
    typealias Client = GatewayHTTPTests.Client

    /// A mesh with a gateway, and an admin, an operator and a viewer key.
    struct Setup {
        let mesh: Mesh
        let port: Int
        let api: Client
        let admin: String
        let operatorKey: String
        let viewer: String
    }

    static func setUp(gatewayEnvironment: [String: String] = [:]) async throws -> Setup? {
        let mesh = try await Mesh()
        let keyFile = "\(mesh.directory)/admin.key"
        try mesh.start(.registry, id: "registry-1")
        try mesh.start(.supervisor, id: "supervisor-1")
        var environment = ["MESH_GATEWAY_BOOTSTRAP_KEY_FILE": keyFile]
        environment.merge(gatewayEnvironment) { _, new in new }
        let port = try mesh.startGateway(id: "gateway-1", extra: environment)
        var api = Client(port: port)
        let ready = await TestEnvironment.waitUntil(timeout: .seconds(60)) { (try? api.call("GET", "/ready"))?.status == 200 }
        #expect(ready, "gateway not ready: \(mesh.processes["gateway-1"]!.logTail())")
        guard ready else {
            mesh.stop()
            return nil
        }
        let admin = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        api.key = admin
        let viewer = try #require(api.object(try api.call("POST", "/api/v1/keys", json: ["role": "viewer", "name": "ws-viewer"]))["secret"] as? String)
        let operatorKey = try #require(api.object(try api.call("POST", "/api/v1/keys", json: ["role": "operator", "name": "ws-op"]))["secret"] as? String)
        return Setup(mesh: mesh, port: port, api: api, admin: admin, operatorKey: operatorKey, viewer: viewer)
    }

    /// Reads messages until an event passes `stop`; every event read is returned.
    /// - Throws: when the connection closes or a read times out first.
    static func events(_ socket: WebSocketTestClient, until stop: ([String: Any]) -> Bool) throws -> [[String: Any]] {
        var events: [[String: Any]] = []
        while true {
            switch try socket.next() {
            case .text(let text):
                let event = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
                events.append(event)
                if stop(event) { return events }
            case .binary:
                Issue.record("unexpected binary message")
            case .close(let code, let reason):
                throw LocalServerError("closed (\(code.map(String.init) ?? "-") \(reason)) after \(events.count) events")
            case nil:
                throw LocalServerError("connection ended after \(events.count) events")
            }
        }
    }

    /// The value of an unlabelled metric in the gateway's Prometheus exposition.
    static func metric(_ api: Client, _ name: String) -> Double? {
        guard let text = try? api.call("GET", "/metrics").text else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    @Test func eventsFiltersResumeAndRefusals() async throws {
        guard let setup = try await Self.setUp() else { return }
        let mesh = setup.mesh
        defer { mesh.stop() }
        let port = setup.port
        var api = setup.api
        let viewer = setup.viewer

        // Refused upgrades: the status and the JSON error shape, as for HTTP.
        let anonymous = try WebSocketTestClient(port: port, path: "/api/v1/events")
        #expect(anonymous.handshake.status == 401 && anonymous.errorCode == "unauthenticated", "\(anonymous.handshake)")
        #expect(anonymous.handshake.headers["content-type"] == "application/json")
        #expect(anonymous.handshake.headers["x-request-id"]?.isEmpty == false)
        let unknownKey = try WebSocketTestClient(
            port: port, path: "/api/v1/events", headers: [("Authorization", "Bearer mesh_" + String(repeating: "2", count: 64))])
        #expect(unknownKey.handshake.status == 401 && unknownKey.errorCode == "unauthenticated", "\(unknownKey.handshake)")
        let unknownProtocolKey = try WebSocketTestClient(
            port: port, path: "/api/v1/events",
            headers: [("Sec-WebSocket-Protocol", "mesh.events.v1, bearer.mesh_" + String(repeating: "3", count: 64))])
        #expect(unknownProtocolKey.handshake.status == 401, "\(unknownProtocolKey.handshake)")
        let bearerAlone = try WebSocketTestClient(port: port, path: "/api/v1/events", headers: [("Sec-WebSocket-Protocol", "bearer.\(viewer)")])
        #expect(bearerAlone.handshake.status == 400 && bearerAlone.errorCode == "invalid_argument", "\(bearerAlone.handshake)")
        let badFilter = try WebSocketTestClient(port: port, path: "/api/v1/events?domain=Bad!", headers: [("Authorization", "Bearer \(viewer)")])
        #expect(badFilter.handshake.status == 400 && badFilter.errorCode == "invalid_argument", "\(badFilter.handshake)")
        let badSince = try WebSocketTestClient(port: port, path: "/api/v1/events?since=abc", headers: [("Authorization", "Bearer \(viewer)")])
        #expect(badSince.handshake.status == 400, "\(badSince.handshake)")
        let badAgent = try WebSocketTestClient(port: port, path: "/api/v1/events?agent=Bad.Id", headers: [("Authorization", "Bearer \(viewer)")])
        #expect(badAgent.handshake.status == 400 && badAgent.errorCode == "invalid_id", "\(badAgent.handshake)")
        let elsewhere = try WebSocketTestClient(port: port, path: "/api/v1/agents", headers: [("Authorization", "Bearer \(viewer)")])
        #expect(elsewhere.handshake.status == 404 && elsewhere.errorCode == "not_found", "\(elsewhere.handshake)")

        // Two clients before anything happens: one filtered to an agent (key in the header),
        // one to agent deletions (key as a subprotocol, the browser form). Both replay from
        // the start of the stream, so they see the agent's events whenever their consumer starts.
        let byAgent = try WebSocketTestClient(port: port, path: "/api/v1/events?since=0&agent=ws-a", headers: [("Authorization", "Bearer \(viewer)")])
        #expect(byAgent.handshake.status == 101, "\(byAgent.handshake)")
        #expect(byAgent.handshake.headers["sec-websocket-protocol"] == nil)
        let deletions = try WebSocketTestClient(
            port: port, path: "/api/v1/events?since=0&domain=agent&type=deleted",
            headers: [("Sec-WebSocket-Protocol", "mesh.events.v1, bearer.\(viewer)")])
        #expect(deletions.handshake.status == 101, "\(deletions.handshake)")
        #expect(deletions.handshake.headers["sec-websocket-protocol"] == "mesh.events.v1", "the key must not be echoed")
        guard byAgent.handshake.status == 101, deletions.handshake.status == 101 else { return }

        // Creating agents produces events; the filtered client sees only its agent's.
        api.key = setup.operatorKey
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "ws-b", "kind": "echo"]).status == 201)
        #expect(try api.call("POST", "/api/v1/agents", json: ["id": "ws-a", "kind": "echo"]).status == 201)
        let created = try Self.events(byAgent) { $0["type"] as? String == "created" }
        #expect(created.allSatisfy { $0["agent"] as? String == "ws-a" }, "\(created)")
        let createdEvent = try #require(created.last)
        #expect(createdEvent["domain"] as? String == "agent" && createdEvent["event_id"] is String && createdEvent["occurred_at"] is String)
        let createdSeq = try #require(createdEvent["seq"] as? Int)

        // A live event on an open connection (its consumer certainly exists by now).
        #expect(try api.call("DELETE", "/api/v1/agents/ws-b").status == 200)
        #expect(try api.call("DELETE", "/api/v1/agents/ws-a").status == 200)
        let untilDeleted = try Self.events(byAgent) { $0["type"] as? String == "deleted" }
        #expect(untilDeleted.allSatisfy { $0["agent"] as? String == "ws-a" }, "\(untilDeleted)")
        let deletedSeq = try #require(untilDeleted.last?["seq"] as? Int)
        #expect(deletedSeq > createdSeq)
        let afterCreated = try #require(untilDeleted.first)
        let deletedEvents = try Self.events(deletions) { $0["agent"] as? String == "ws-a" }
        #expect(deletedEvents.map { $0["agent"] as? String } == ["ws-b", "ws-a"], "\(deletedEvents)")
        #expect(deletedEvents.allSatisfy { $0["type"] as? String == "deleted" && $0["domain"] as? String == "agent" })

        // Resume after a sequence: `since`, or `Last-Event-ID` as for SSE; the first event
        // is the first one after it (the deletion, unless the supervisor had a word in between).
        for (path, headers) in [
            ("/api/v1/events?agent=ws-a&since=\(createdSeq)", [("Authorization", "Bearer \(viewer)")]),
            ("/api/v1/events?agent=ws-a", [("Authorization", "Bearer \(viewer)"), ("Last-Event-ID", String(createdSeq))]),
        ] {
            let resumed = try WebSocketTestClient(port: port, path: path, headers: headers)
            #expect(resumed.handshake.status == 101, "\(resumed.handshake)")
            let first = try Self.events(resumed) { _ in true }
            #expect(first.first?["seq"] as? Int == afterCreated["seq"] as? Int && first.first?["type"] as? String == afterCreated["type"] as? String, "\(first)")
            try resumed.sendClose()
        }

        // Pings are answered; the client's close is answered and ends its consumer.
        try byAgent.send(opcode: 0x9, payload: Array("hi".utf8))
        var answer = try byAgent.nextFrame()
        while answer?.opcode == 0x1 { answer = try byAgent.nextFrame() }  // an event may come first
        #expect(answer?.opcode == 0xA && answer?.payload == Array("hi".utf8))
        try byAgent.sendClose()
        if case .close(let code, _) = try byAgent.next() {
            #expect(code == 1000)
        } else {
            Issue.record("no close frame in answer to the client's")
        }
        try deletions.sendClose()
        let released = await TestEnvironment.waitUntil(timeout: .seconds(20)) { Self.metric(api, "mesh_gateway_event_clients") == 0 }
        #expect(released, "event clients: \(String(describing: Self.metric(api, "mesh_gateway_event_clients")))")

        // A frame larger than the inbound bound closes the connection with 1009.
        let chatty = try WebSocketTestClient(port: port, path: "/api/v1/events", headers: [("Authorization", "Bearer \(viewer)")])
        try chatty.send(opcode: 0x1, payload: Array(repeating: 0x61, count: 4_096))
        var tooLarge: UInt16?
        while let message = try chatty.next() {
            if case .close(let code, _) = message {
                tooLarge = code
                break
            }
        }
        #expect(tooLarge == 1009)

        // The refusals went to the audit log like those of HTTP requests.
        let store = Store(configuration: StoreConfiguration(connectionString: mesh.postgres.connectionString), logger: Logger(label: "test"))
        defer { store.close() }
        var refused = 0
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            let rows = (try? await store.query("SELECT 1 FROM audit_log WHERE action = 'GET /api/v1/events' AND outcome = 'unauthenticated' AND status = 401")) ?? []
            refused = rows.count
            return refused >= 3
        }
        #expect(refused == 3)
    }

    @Test func aClientThatStopsReadingIsClosedWith1013() async throws {
        guard let setup = try await Self.setUp(gatewayEnvironment: ["MESH_GATEWAY_LIVE_BUFFER_EVENTS": "4", "MESH_GATEWAY_SLOW_CLIENT_TIMEOUT_MS": "500"])
        else { return }
        let mesh = setup.mesh
        defer { mesh.stop() }

        // More events than the socket buffers on both sides hold: 640 of 16 KiB each.
        var options = NatsOptions()
        options.servers = [mesh.nats.url]
        let connection = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        let js = try connection.jetStream()
        let subjects = try Subjects()
        let filler = String(repeating: "x", count: 16 << 10)
        for index in 0..<640 {
            let event = Event(
                id: "big-\(index)", domain: "loadtest", type: "big", reason: "filler", timestampUnixMs: Int64(Date().timeIntervalSince1970 * 1000),
                attributes: ["filler": filler])
            try js.publishAsync(subjects.event(domain: "loadtest", name: "big"), payload: event.serializedBytes())
        }
        try js.publishAsyncComplete(timeout: .seconds(30))

        // A client with a small receive buffer that reads nothing until the gateway gave up on it.
        let slow = try WebSocketTestClient(
            port: setup.port, path: "/api/v1/events?since=0&domain=loadtest", headers: [("Authorization", "Bearer \(setup.viewer)")],
            receiveBuffer: 4_096)
        #expect(slow.handshake.status == 101, "\(slow.handshake)")
        guard slow.handshake.status == 101 else { return }
        let noticed = await TestEnvironment.waitUntil(timeout: .seconds(60)) { (Self.metric(setup.api, "mesh_gateway_event_clients_slow_total") ?? 0) >= 1 }
        #expect(noticed, "the gateway did not notice the slow client: \(mesh.processes["gateway-1"]!.logTail())")

        // Now read: the events written before the decision, then a close frame 1013 whose
        // reason names the last sequence sent, so the client can resume without a gap.
        var lastSeq: Int?
        var received = 0
        var close: (code: UInt16?, reason: String)?
        while let message = try slow.next() {
            switch message {
            case .text(let text):
                let event = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                lastSeq = event?["seq"] as? Int
                received += 1
            case .close(let code, let reason):
                close = (code, reason)
            case .binary:
                break
            }
            if close != nil { break }
        }
        #expect(received > 0 && received < 640, "\(received) events")
        #expect(close?.code == 1013, "\(String(describing: close))")
        #expect(close?.reason.contains("slow_consumer") == true && close?.reason.hasSuffix("since=\(lastSeq ?? -1)") == true, "\(String(describing: close)) last \(String(describing: lastSeq))")
        try? slow.sendClose()
        let released = await TestEnvironment.waitUntil(timeout: .seconds(20)) { Self.metric(setup.api, "mesh_gateway_event_clients") == 0 }
        #expect(released)
    }

    @Test func gatewayShutdownClosesTheConnectionAndRemovesTheConsumer() async throws {
        guard let setup = try await Self.setUp() else { return }
        let mesh = setup.mesh
        defer { mesh.stop() }
        var options = NatsOptions()
        options.servers = [mesh.nats.url]
        let connection = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        let js = try connection.jetStream()
        let stream = try Subjects().eventsStream
        let before = try js.streamInfo(stream).state.consumerCount

        let client = try WebSocketTestClient(port: setup.port, path: "/api/v1/events", headers: [("Authorization", "Bearer \(setup.viewer)")])
        #expect(client.handshake.status == 101, "\(client.handshake)")
        let subscribed = await TestEnvironment.waitUntil(timeout: .seconds(20)) { (try? js.streamInfo(stream).state.consumerCount) == before + 1 }
        #expect(subscribed)

        let gateway = try #require(mesh.processes["gateway-1"])
        kill(gateway.pid, SIGTERM)
        var code: UInt16?
        while let message = try client.next() {
            if case .close(let closeCode, _) = message {
                code = closeCode
                try? client.sendClose()
            }
        }
        #expect(code == 1000 || code == 1001, "\(String(describing: code))")
        let exited = await TestEnvironment.waitUntil(timeout: .seconds(30)) { !gateway.isRunning }
        #expect(exited)
        #expect(try js.streamInfo(stream).state.consumerCount == before, "the gateway left its consumer behind")
    }
}

/// A minimal blocking WebSocket client (RFC 6455, plain TCP, like ``LocalHTTP``): the
/// handshake (a refused one keeps its status, headers and body), unmasked server frames,
/// masked client frames, answers to pings. It never reads unless asked, so a test can
/// play a client that stopped reading.
final class WebSocketTestClient: @unchecked Sendable {
    struct Handshake: CustomStringConvertible {
        var status: Int
        var headers: [String: String]
        var body: String
        var description: String { "\(status) \(headers) \(body)" }
    }

    enum Message {
        case text(String)
        case binary([UInt8])
        case close(code: UInt16?, reason: String)
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private(set) var handshake = Handshake(status: 0, headers: [:], body: "")

    /// Connects and sends the upgrade request.
    /// - Parameters:
    ///   - receiveBuffer: `SO_RCVBUF` set before connecting (a small one makes a client that
    ///     does not read block the server quickly).
    ///   - timeoutMs: longest a single read may wait (a read past it throws).
    init(port: Int, path: String, headers: [(String, String)] = [], receiveBuffer: Int? = nil, timeoutMs: Int = 20_000) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalServerError("socket() failed") }
        if let receiveBuffer {
            var size = Int32(receiveBuffer)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            throw LocalServerError("cannot connect to 127.0.0.1:\(port)")
        }
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        try sendAll(Array(head.utf8))
        handshake = try readHandshake()
    }

    deinit { close(fd) }

    /// The `error.code` of a refused upgrade's JSON body.
    var errorCode: String? {
        let object = (try? JSONSerialization.jsonObject(with: Data(handshake.body.utf8))) as? [String: Any]
        return (object?["error"] as? [String: Any])?["code"] as? String
    }

    private func readHandshake() throws -> Handshake {
        let separator = Array("\r\n\r\n".utf8)
        var end: Int?
        while end == nil {
            end = buffer.firstRange(of: separator)?.lowerBound
            if end == nil, try !receive() { throw LocalServerError("no answer to the upgrade request") }
        }
        let lines = String(decoding: buffer[..<end!], as: UTF8.self).components(separatedBy: "\r\n")
        start = end! + separator.count
        let parts = (lines.first ?? "").split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw LocalServerError("not HTTP: \(lines.first ?? "")") }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = ""
        if status != 101 {
            let length = fields["content-length"].flatMap { Int($0) } ?? 0
            while buffer.count - start < length, try receive() {}
            body = String(decoding: buffer[start..<min(buffer.count, start + length)], as: UTF8.self)
        }
        return Handshake(status: status, headers: fields, body: body)
    }

    /// Reads more bytes. - Returns: false at the end of the connection. - Throws: on a read timeout.
    private func receive() throws -> Bool {
        if start > 1 << 20 {
            buffer.removeFirst(start)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if received > 0 {
            buffer.append(contentsOf: chunk[0..<received])
            return true
        }
        if received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw LocalServerError("read timed out") }
        return false
    }

    private func fill(_ count: Int) throws -> Bool {
        while buffer.count - start < count {
            guard try receive() else { return false }
        }
        return true
    }

    /// The next frame of any kind, or nil at the end of the connection.
    func nextFrame() throws -> (fin: Bool, opcode: UInt8, payload: [UInt8])? {
        guard try fill(2) else { return nil }
        let first = buffer[start]
        let second = buffer[start + 1]
        var length = Int(second & 0x7f)
        var offset = 2
        if length == 126 {
            guard try fill(4) else { return nil }
            length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
            offset = 4
        } else if length == 127 {
            guard try fill(10) else { return nil }
            length = (2..<10).reduce(0) { $0 << 8 | Int(buffer[start + $1]) }
            offset = 10
        }
        if second & 0x80 != 0 { offset += 4 }  // a server never masks; skip a key anyway
        guard try fill(offset + length) else { return nil }
        let payload = Array(buffer[(start + offset)..<(start + offset + length)])
        start += offset + length
        return (first & 0x80 != 0, first & 0x0f, payload)
    }

    /// The next message (pings answered, pongs skipped), or nil at the end of the connection.
    func next() throws -> Message? {
        while let frame = try nextFrame() {
            switch frame.opcode {
            case 0x1: return .text(String(decoding: frame.payload, as: UTF8.self))
            case 0x2: return .binary(frame.payload)
            case 0x8:
                let code = frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : nil
                return .close(code: code, reason: String(decoding: frame.payload.dropFirst(2), as: UTF8.self))
            case 0x9: try send(opcode: 0xA, payload: frame.payload)
            default: continue
            }
        }
        return nil
    }

    /// Sends one masked frame.
    func send(opcode: UInt8, payload: [UInt8]) throws {
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xffff {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        } else {
            frame.append(0x80 | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xff) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try sendAll(frame)
    }

    /// Sends a close frame with `code`.
    func sendClose(code: UInt16 = 1000) throws {
        try send(opcode: 0x8, payload: [UInt8(code >> 8), UInt8(code & 0xff)])
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw LocalServerError("send failed") }
            offset += sent
        }
    }
}
