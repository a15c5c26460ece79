import AgentSDK
import Foundation
import MeshCore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// A real HTTP/1.1 server on 127.0.0.1 with a few behaviours selected by path:
/// `/echo` answers the request's headers and body as JSON, `/flaky` fails with 500 twice
/// then answers, `/down` always answers 503, `/slow` answers after 2 s, `/big` answers
/// 2 MiB, `/limited` answers 429, `/missing` answers 404.
final class TestHTTPServer: Sendable {
    let channel: any Channel
    let requests = RequestCounts()
    var port: Int { channel.localAddress!.port! }

    init() async throws {
        let requests = self.requests
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(requests: requests))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func count(_ path: String) -> Int { requests.counts.withLock { $0[path] ?? 0 } }

    final class RequestCounts: Sendable {
        let counts = Mutex<[String: Int]>([:])
    }
    func close() async { try? await channel.close() }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let requests: RequestCounts
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(requests: RequestCounts) { self.requests = requests }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                guard let head else { return }
                let count = requests.counts.withLock { counts -> Int in
                    counts[head.uri, default: 0] += 1
                    return counts[head.uri]!
                }
                switch head.uri {
                case "/echo":
                    var headers: [String: String] = [:]
                    for (name, value) in head.headers { headers[name.lowercased()] = value }
                    let echoed: [String: Any] = [
                        "method": "\(head.method)", "headers": headers,
                        "body": String(decoding: body, as: UTF8.self),
                    ]
                    respond(context, .ok, try! JSONSerialization.data(withJSONObject: echoed).map { $0 })
                case "/flaky":
                    count <= 2 ? respond(context, .internalServerError, bytes("oops")) : respond(context, .ok, bytes(#"{"third":"time"}"#))
                case "/down":
                    respond(context, .serviceUnavailable, bytes("down"))
                case "/slow":
                    let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
                    context.eventLoop.scheduleTask(in: .seconds(2)) {
                        self.respond(loopContext.value, .ok, bytes("{}"))
                    }
                case "/big":
                    respond(context, .ok, [UInt8](repeating: UInt8(ascii: "a"), count: 2 << 20))
                case "/limited":
                    respond(context, .tooManyRequests, bytes("slow down"), extra: [("Retry-After", "7")])
                default:
                    respond(context, .notFound, bytes("no"))
                }
            }
        }

        func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: [UInt8], extra: [(String, String)] = []) {
            var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(body.count)")])
            for (name, value) in extra { headers.add(name: name, value: value) }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

@Suite("http kind against a local HTTP server")
struct HTTPTests {
    func http(_ server: TestHTTPServer, _ path: String, _ extra: String = "") throws(MeshError) -> any AgentBehavior {
        try behavior("http", #"{"url": "http://127.0.0.1:\#(server.port)\#(path)", "backoffMs": 10\#(extra)}"#)
    }

    @Test func postsJSONWithHeaders() async throws {
        let server = try await TestHTTPServer()
        var kind = try http(server, "/echo", #", "headers": {"Authorization": "Bearer secret-token", "X-Team": "search"}"#)
        let reply = try object(try await kind.run("chat", #"{"messages": [{"role": "user", "content": "hi"}]}"#))
        #expect(reply["method"] as? String == "POST")
        #expect(reply["body"] as? String == #"{"messages": [{"role": "user", "content": "hi"}]}"#)
        let headers = try #require(reply["headers"] as? [String: String])
        #expect(headers["authorization"] == "Bearer secret-token")
        #expect(headers["x-team"] == "search")
        #expect(headers["content-type"] == "application/json")
        #expect(headers["x-mesh-action"] == "chat")
        #expect(headers["host"] == "127.0.0.1:\(server.port)")
        await server.close()
    }

    @Test func retriesOn500ThenSucceeds() async throws {
        let server = try await TestHTTPServer()
        var kind = try http(server, "/flaky", #", "retries": 2"#)
        #expect(text(try await kind.run("x", "{}")) == #"{"third":"time"}"#)
        #expect(server.count("/flaky") == 3)
        await server.close()
    }

    @Test func givesUpAfterTheRetries() async throws {
        let server = try await TestHTTPServer()
        var kind = try http(server, "/down", #", "retries": 1"#)
        let error = await expectMeshError(.unavailable) { _ = try await kind.run("x", "{}") }
        #expect(error?.message == "http: http://127.0.0.1:\(server.port) answered HTTP 503 after 2 attempt(s)")
        #expect(server.count("/down") == 2)
        await server.close()
    }

    @Test func connectionErrorsAreRetried() async throws {
        let server = try await TestHTTPServer()
        let port = server.port
        await server.close()
        var kind = try behavior("http", #"{"url": "http://127.0.0.1:\#(port)/v1/chat?key=hidden", "retries": 2, "backoffMs": 1}"#)
        let error = await expectMeshError(.unavailable) { _ = try await kind.run("x", "{}") }
        #expect(error?.message.contains("after 3 attempt(s)") == true)
        #expect(error?.message.contains("hidden") == false)
        #expect(error?.message.contains("/v1/chat") == false)
    }

    @Test func timeoutIsNotRetried() async throws {
        let server = try await TestHTTPServer()
        var kind = try http(server, "/slow", #", "timeoutMs": 200, "retries": 3"#)
        let started = ContinuousClock.now
        await expectMeshError(.timeout) { _ = try await kind.run("x", "{}") }
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(server.count("/slow") == 1)
        await server.close()
    }

    @Test func responseSizeIsCapped() async throws {
        let server = try await TestHTTPServer()
        var kind = try http(server, "/big", #", "maxResponseBytes": 1048576"#)
        let error = await expectMeshError(.tooLarge) { _ = try await kind.run("x", "{}") }
        #expect(error?.message.contains("1048576") == true)
        var roomy = try http(server, "/big", #", "maxResponseBytes": 4194304"#)
        #expect(try await roomy.run("x", "{}").count == 2 << 20)
        await server.close()
    }

    @Test func statusCodesMapToErrors() async throws {
        let server = try await TestHTTPServer()
        var limited = try http(server, "/limited")
        let busy = await expectMeshError(.busy) { _ = try await limited.run("x", "{}") }
        #expect(busy?.retryAfter == .seconds(7))
        #expect(server.count("/limited") == 1)
        var missing = try http(server, "/missing")
        let notFound = await expectMeshError(.invalidArgument) { _ = try await missing.run("x", "{}") }
        #expect(notFound?.message == "http: http://127.0.0.1:\(server.port) answered HTTP 404")
        await expectMeshError(.invalidArgument) { _ = try await missing.run("x", "not json") }
        await server.close()
    }

    @Test func configIsValidatedAndSecretsStayHidden() async {
        let https = await expectMeshError(.invalidArgument) { _ = try behavior("http", #"{"url": "https://api.example.com/v1"}"#) }
        #expect(https?.message.contains("TLS-terminating proxy") == true)
        await expectMeshError(.invalidArgument) { _ = try behavior("http", #"{"url": "ftp://x"}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("http", #"{"url": "http://:80/"}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("http", #"{"url": "http://user:pw@host/"}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("http", #"{"url": "http://host:99999/"}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("http", #"{"url": "http://host/", "headers": {"Content-Length": "1"}}"#) }
        let injected = await expectMeshError(.invalidArgument) {
            _ = try behavior("http", #"{"url": "http://host/", "headers": {"Authorization": "Bearer s3cr3t\r\nX-Evil: 1"}}"#)
        }
        #expect(injected?.message.contains("s3cr3t") == false)
        await expectMeshError(.invalidArgument) { _ = try behavior("http", #"{"url": "http://host/", "retries": 11}"#) }
    }
}
