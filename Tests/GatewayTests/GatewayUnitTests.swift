import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import GatewayService
import MeshCore
import MeshProto
import Testing

@Suite struct SHA256Tests {
    @Test func fipsVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256.hex(Array(repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Lengths around the padding boundary (55, 56, 64 bytes) differ from each other.
        let digests = Set([55, 56, 63, 64, 65].map { SHA256.hex(Array(repeating: 0x61, count: $0)) })
        #expect(digests.count == 5)
        #expect(SHA256.hex(Array(repeating: 0x61, count: 64)) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    @Test func secretsHaveTheirShapeAndDiffer() {
        let a = APIKeyStore.makeSecret()
        let b = APIKeyStore.makeSecret()
        #expect(a != b)
        #expect(APIKeyStore.looksLikeSecret(a))
        #expect(!APIKeyStore.looksLikeSecret("mesh_xyz"))
        #expect(!APIKeyStore.looksLikeSecret(String(a.dropLast()) + "G"))
        #expect(APIKeyStore.hash(secret: a).count == 64)
        #expect(APIKeyStore.hash(secret: a) != a)
    }
}

@Suite struct RateLimiterTests {
    @Test func bucketAllowsTheBurstThenRefillsAtTheRate() {
        var bucket = TokenBucket(capacity: 3, refillPerSecond: 2, now: 100)
        #expect(bucket.take(now: 100) == .allowed)
        #expect(bucket.take(now: 100) == .allowed)
        #expect(bucket.take(now: 100) == .allowed)
        guard case .limited(let retryAfter) = bucket.take(now: 100) else {
            Issue.record("the fourth request in the same instant must be limited")
            return
        }
        #expect(abs(retryAfter - 0.5) < 1e-9)
        #expect(bucket.take(now: 100.25) != .allowed)  // half a token
        #expect(bucket.take(now: 100.5) == .allowed)  // one token after 0.5 s
        #expect(bucket.take(now: 100.5) != .allowed)
        // A long pause refills only up to the capacity.
        #expect(bucket.isFull(now: 200))
        for _ in 0..<3 { #expect(bucket.take(now: 200) == .allowed) }
        #expect(bucket.take(now: 200) != .allowed)
        // Time going backwards grants nothing.
        #expect(bucket.take(now: 150) != .allowed)
    }

    @Test func limiterKeepsOneBucketPerKeyAndBoundsTheTable() {
        final class Clock: @unchecked Sendable { var now = 0.0 }
        let clock = Clock()
        let limiter = RateLimiter(ratePerSecond: 1, burst: 2, maxKeys: 3, clock: { clock.now })
        #expect(limiter.take(key: "a") == .allowed)
        #expect(limiter.take(key: "a") == .allowed)
        #expect(limiter.take(key: "a") != .allowed)
        #expect(limiter.take(key: "b") == .allowed)  // another key has its own bucket
        #expect(limiter.take(key: "c") == .allowed)
        #expect(limiter.take(key: "d") == .allowed)
        #expect(limiter.trackedKeys <= 3)
        clock.now = 10
        #expect(limiter.take(key: "a") == .allowed)
    }
}

@Suite struct ErrorMappingTests {
    @Test func meshCodesMapToOneStatusEach() {
        let expected: [(MeshError.Code, Int)] = [
            (.invalidID, 400), (.invalidArgument, 400), (.unauthenticated, 401), (.permissionDenied, 403), (.notFound, 404),
            (.alreadyExists, 409), (.conflict, 409), (.tooLarge, 413), (.busy, 429), (.unavailable, 503), (.noResponders, 503),
            (.staleEpoch, 503), (.timeout, 504), (.internalError, 500), (MeshError.Code(rawValue: "something_new"), 500),
        ]
        for (code, status) in expected { #expect(Int(APIError.status(for: code).code) == status, "\(code)") }
        let busy = APIError(MeshError(.busy, "mailbox full", retryAfter: .milliseconds(1500)))
        #expect(busy.retryAfterSeconds == 2)
        #expect(APIError(MeshError(.unavailable, "x")).retryAfterSeconds == 1)
    }

    @Test func bodyIsTheOneErrorShape() throws {
        let error = APIError(MeshError(.notFound, "no agent \"x\""))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(error.body)) as? [String: Any])
        let inner = try #require(object["error"] as? [String: Any])
        #expect(object.count == 1)
        #expect(inner["code"] as? String == "not_found")
        #expect(inner["message"] as? String == "no agent \"x\"")
    }

    @Test func rolesAreOrdered() {
        #expect(Role.viewer < .operator && Role.operator < .admin)
        #expect(Role.allCases.sorted() == [.viewer, .operator, .admin])
    }

    @Test func timelineCursorRoundTripsAndRejectsGarbage() {
        let encoded = TimelineCursor.encode(time: "2026-11-23 09:13:29.123456+00", event: "01JD3X-abc_1")
        let decoded = TimelineCursor.decode(encoded)
        #expect(decoded?.time == "2026-11-23 09:13:29.123456+00" && decoded?.event == "01JD3X-abc_1")
        #expect(TimelineCursor.decode("!!!") == nil)
        #expect(TimelineCursor.decode(TimelineCursor.encode(time: "1'; DROP TABLE x", event: "a")) == nil)
        #expect(GatewayAPI.isValidActionName("add") && !GatewayAPI.isValidActionName("a b") && !GatewayAPI.isValidActionName(""))
    }
}

@Suite struct OpenAPITests {
    /// Every route of the table is in the document with its method, and every documented
    /// operation is a route: the document and the router cannot drift apart.
    @Test func documentAndRouteTableAgree() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
        #expect(object["openapi"] as? String == "3.1.0")
        let paths = try #require(object["paths"] as? [String: [String: Any]])
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]
        var documented: Set<String> = []
        var operationIDs: [String: String] = [:]
        for (path, item) in paths {
            for (method, operation) in item where methods.contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
                operationIDs["\(method.uppercased()) \(path)"] = (operation as? [String: Any])?["operationId"] as? String
            }
        }
        let served = Set(GatewayRoutes.all.map { "\($0.method.rawValue) \($0.path)" })
        #expect(served.count == GatewayRoutes.all.count, "a route is listed twice")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented).sorted())")
        for route in GatewayRoutes.all {
            #expect(operationIDs["\(route.method.rawValue) \(route.path)"] == route.operation.rawValue, "\(route.path)")
        }
        #expect(Set(GatewayRoutes.all.map(\.operation)) == Set(Operation.allCases))
        // Every $ref points at something that exists.
        let components = try #require(object["components"] as? [String: [String: Any]])
        for reference in Self.references(in: object) {
            let parts = reference.split(separator: "/").map(String.init)
            #expect(parts.count == 4 && parts[0] == "#" && components[parts[2]]?[parts[3]] != nil, "dangling \(reference)")
        }
    }

    static func references(in value: Any) -> [String] {
        if let object = value as? [String: Any] {
            return object.flatMap { key, child in key == "$ref" ? [(child as? String) ?? ""] : references(in: child) }
        }
        if let array = value as? [Any] { return array.flatMap(references(in:)) }
        return []
    }
}

@Suite struct LiveEventTests {
    @Test func filtersBecomeSubjectsAndMatchEvents() throws {
        let subjects = try Subjects()
        #expect(EventFilter().subject(subjects) == "mesh.evt.>")
        #expect(EventFilter(domain: "agent").subject(subjects) == "mesh.evt.agent.*")
        #expect(EventFilter(domain: "agent", type: "failed").subject(subjects) == "mesh.evt.agent.failed")
        #expect(EventFilter(type: "failed").subject(subjects) == "mesh.evt.*.failed")
        var event = Event(id: "e1", domain: "agent", type: "created", agentId: "counter-1")
        #expect(EventFilter(agent: "counter-1").matches(event))
        #expect(!EventFilter(agent: "counter-2").matches(event))
        #expect(!EventFilter(domain: "agent", type: "deleted").matches(event))
        event.type = "deleted"
        #expect(EventFilter(domain: "agent", type: "deleted").matches(event))
    }

    @Test func framesCarryTheStreamSequenceAsTheirID() throws {
        let frame = LiveEvents.frame(
            sequence: 42, event: Event(id: "e1", domain: "agent", type: "created", agentId: "a-1", reason: "by test", timestampUnixMs: 1_000))
        let lines = frame.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "id: 42" && lines[1] == "event: agent.created" && frame.hasSuffix("\n\n"))
        let data = try #require(try JSONSerialization.jsonObject(with: Data(lines[2].dropFirst("data: ".count).utf8)) as? [String: Any])
        #expect(data["seq"] as? Int == 42 && data["agent"] as? String == "a-1" && data["reason"] as? String == "by test")
    }

    @Test func aFullClientQueueIsNoticed() {
        let queue = ClientQueue(capacity: 2)
        queue.added()
        #expect(!queue.isFull)
        queue.added()
        #expect(queue.isFull)
        queue.removed()
        #expect(!queue.isFull)
    }
}

@Suite struct DeadlineTests {
    @Test func aRequestPastItsDeadlineIs504() async throws {
        let deadlines = RequestDeadlines()
        let started = ContinuousClock.now
        do {
            _ = try await deadlines.run(timeout: .milliseconds(50)) {
                try await Task.sleep(for: .seconds(5))
                return GatewayAPI.json(["late": true])
            }
            Issue.record("the deadline did not fire")
        } catch let error as APIError {
            #expect(error.status.code == 504 && error.code == "timeout")
        }
        #expect(ContinuousClock.now - started < .seconds(4), "the sleep was cancelled at the deadline")
        #expect(!Task.isCancelled, "only the body's task is cancelled, so the caller can still answer")
        // A body that finishes in time is answered as it is (no error), and is not cancelled later.
        let response = try await deadlines.run(timeout: .milliseconds(100)) { GatewayAPI.json(["ok": true], status: .created) }
        #expect(response.status == .created)
        try await Task.sleep(for: .milliseconds(200))
        #expect(!Task.isCancelled)
        // A body that ignores cancellation and returns is answered with what it returned.
        let late = try await deadlines.run(timeout: .milliseconds(20)) {
            while !Task.isCancelled { await Task.yield() }
            return GatewayAPI.json(["late": true], status: .accepted)
        }
        #expect(late.status == .accepted)
        // An error thrown before the deadline stays that error.
        do {
            _ = try await deadlines.run(timeout: .seconds(5)) { () async throws -> Response in throw APIError.badRequest("no") }
            Issue.record("the error was lost")
        } catch let error as APIError {
            #expect(error.status.code == 400)
        }
        #expect(deadlines.inFlight == 0)
    }

    @Test func manyConcurrentRequestsEachGetTheirOwnDeadline() async throws {
        let deadlines = RequestDeadlines()
        let outcomes = await withTaskGroup(of: Int.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let slow = index % 2 == 0
                    do {
                        let response = try await deadlines.run(timeout: .milliseconds(slow ? 30 : 5_000)) {
                            if slow { try await Task.sleep(for: .seconds(10)) }
                            return GatewayAPI.json(["i": index])
                        }
                        return Int(response.status.code)
                    } catch let error as APIError {
                        return Int(error.status.code)
                    } catch {
                        return 0
                    }
                }
            }
            var counts: [Int: Int] = [:]
            for await code in group { counts[code, default: 0] += 1 }
            return counts
        }
        #expect(outcomes == [200: 100, 504: 100])
        #expect(deadlines.inFlight == 0)
    }
}

@Suite struct LiveEventWebSocketTests {
    @Test func bearerKeysAreReadByteByByte() {
        #expect(GatewayAPI.bearerSecret("Bearer abc") == "abc")
        #expect(GatewayAPI.bearerSecret("bEaReR \t abc-1_x \t") == "abc-1_x")
        for refused in ["", "Bearer", "Bearer ", "Bearer    ", "Basic abc", "Bearerabc", "Bearer\tabc", "Bear abc", "Bearer " + String(repeating: "k", count: 250)] {
            #expect(GatewayAPI.bearerSecret(refused) == nil, "\(refused)")
        }
    }

    @Test func theKeyComesFromTheHeaderOrTheBearerSubprotocol() throws {
        let key = "mesh_" + String(repeating: "a", count: 64)
        var headers = HTTPFields()
        headers[values: .secWebSocketProtocol] = ["mesh.events.v1, bearer.\(key)", "other"]
        let offered = GatewayAPI.offeredSubprotocols(headers)
        #expect(offered == ["mesh.events.v1", "bearer.\(key)", "other"])
        #expect(try GatewayAPI.webSocketAuthorization(headers, offered: offered) == "Bearer \(key)")
        // The header wins over the subprotocol.
        headers[.authorization] = "Bearer other"
        #expect(try GatewayAPI.webSocketAuthorization(headers, offered: offered) == "Bearer other")
        // No key at all: nil (→ 401).
        #expect(try GatewayAPI.webSocketAuthorization(HTTPFields(), offered: []) == nil)
        // bearer.<key> without mesh.events.v1: 400 (a browser would reject the answer).
        do {
            _ = try GatewayAPI.webSocketAuthorization(HTTPFields(), offered: ["bearer.\(key)"])
            Issue.record("bearer.<key> alone was accepted")
        } catch let error as APIError {
            #expect(error.status.code == 400 && error.code == "invalid_argument")
        }
    }

    @Test func theQueryIsParsedOnceForSSEAndWebSocket() throws {
        var headers = HTTPFields()
        let (filter, since) = try GatewayAPI.liveEventQuery(URI("/api/v1/events?domain=agent&type=created&agent=a-1&since=7"), headers: headers)
        #expect(filter == EventFilter(domain: "agent", type: "created", agent: "a-1") && since == 7)
        headers[GatewayAPI.lastEventIDHeader] = " 9 "
        #expect(try GatewayAPI.liveEventQuery(URI("/api/v1/events"), headers: headers).since == 9)
        #expect(try GatewayAPI.liveEventQuery(URI("/api/v1/events?since=3"), headers: headers).since == 3)  // the query wins
        for bad in ["domain=Bad!", "type=a.b", "agent=Bad.Id", "since=-1", "since=abc"] {
            do {
                _ = try GatewayAPI.liveEventQuery(URI("/api/v1/events?\(bad)"), headers: HTTPFields())
                Issue.record("accepted \(bad)")
            } catch {
                #expect(GatewayAPI.apiError(error).status.code == 400, "\(bad): \(error)")
            }
        }
    }

    @Test func aWebSocketMessageIsTheSSEData() throws {
        let event = Event(id: "e1", domain: "agent", type: "created", agentId: "a-1", reason: "by test", timestampUnixMs: 1_000)
        let frame = LiveEvents.frame(sequence: 42, event: event)
        let message = LiveEvents.json(sequence: 42, event: event)
        #expect(frame.split(separator: "\n")[2] == "data: \(message)")
    }

    /// The upgrader's empty 400 for a refused upgrade becomes the gateway's error answer.
    @Test func aRefusedUpgradeIsAnsweredWithTheJSONErrorShape() throws {
        let channel = EmbeddedChannel()
        let error = APIError(.tooManyRequests, code: "rate_limited", "slow down", retryAfterSeconds: 3)
        try channel.pipeline.syncOperations.addHandler(RefusedUpgradeResponse(error: error, requestID: "req-1"))
        let head = HTTPResponseHead(version: .http1_1, status: .badRequest, headers: ["Connection": "close", "Content-Length": "0"])
        try channel.writeOutbound(HTTPServerResponsePart.head(head))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        guard case .head(let written) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no head")
            return
        }
        #expect(written.status.code == 429)
        #expect(written.headers["Content-Type"] == ["application/json"] && written.headers["Retry-After"] == ["3"])
        #expect(written.headers["X-Request-ID"] == ["req-1"] && written.headers["Connection"] == ["close"])
        guard case .body(.byteBuffer(let body)) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no body")
            return
        }
        #expect(Array(body.readableBytesView) == error.body)
        #expect(written.headers["Content-Length"] == [String(error.body.count)])
        guard case .end = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no end")
            return
        }
        _ = try channel.finish()
    }

    @Test func withinReportsWhetherTheBodyFinishedInTime() async {
        #expect(await LiveEvents.within(.seconds(5)) {})
        #expect(await !LiveEvents.within(.milliseconds(20)) { try await Task.sleep(for: .seconds(5)) })
        #expect(await !LiveEvents.within(.seconds(5)) { throw CancellationError() })
    }
}
