import MeshCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 client on SwiftNIO for the `http` kind: one connection per request
/// (`Connection: close`), plain `http://` only, a deadline for the whole exchange, a cap on
/// the response body. No libcurl and no Foundation networking, so the runtime image needs
/// neither.
enum OneShotHTTP {
    struct Target: Sendable {
        var host: String
        var port: Int
        /// Path and query, starting with `/`.
        var path: String
        /// `http://host:port` — what messages and logs may show (never path or query,
        /// which may carry keys).
        var origin: String
    }

    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    enum Failure: Error, Sendable {
        /// Connecting failed or the connection broke before a full response: retryable.
        case connection(String)
        case timedOut
        case tooLarge
        case cancelled
    }

    /// Parses `http://host[:port][/path][?query]`.
    /// - Throws: ``MeshError`` `invalid_argument`; https is refused with advice.
    static func parse(_ url: String) throws(MeshError) -> Target {
        let lower = url.lowercased()
        if lower.hasPrefix("https://") {
            throw MeshError(
                .invalidArgument,
                "http config: https is not supported by this client; point 'url' at an http:// TLS-terminating proxy (for example a sidecar)")
        }
        guard lower.hasPrefix("http://") else { throw MeshError(.invalidArgument, "http config: 'url' must start with http://") }
        let rest = url.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        guard !authority.contains("@") else { throw MeshError(.invalidArgument, "http config: credentials in 'url' are not allowed; use 'headers'") }
        var host: Substring
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw MeshError(.invalidArgument, "http config: 'url' has a malformed IPv6 host") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), (1...65_535).contains(value) else {
                    throw MeshError(.invalidArgument, "http config: 'url' has an invalid port")
                }
                port = value
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let value = Int(authority[authority.index(after: colon)...]), (1...65_535).contains(value) else {
                throw MeshError(.invalidArgument, "http config: 'url' has an invalid port")
            }
            port = value
        } else {
            host = authority
        }
        guard !host.isEmpty, host.allSatisfy({ !$0.isWhitespace }) else { throw MeshError(.invalidArgument, "http config: 'url' has no host") }
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw MeshError(.invalidArgument, "http config: the path of 'url' must be percent-encoded ASCII without spaces")
        }
        let shownHost = authority.hasPrefix("[") ? "[\(host)]" : String(host)
        return Target(host: String(host), port: port, path: path, origin: "http://\(shownHost):\(port)")
    }

    /// POSTs `body` to `target` and collects the response.
    static func post(
        _ target: Target, headers: [(String, String)], body: [UInt8], deadline: ContinuousClock.Instant, maxResponseBytes: Int
    ) async throws(Failure) -> Response {
        let remaining = deadline - .now
        guard remaining > .zero else { throw .timedOut }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: Response.self)
        let timeout = TimeAmount.nanoseconds(remaining.totalNanoseconds)
        let connected = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise, maxBytes: maxResponseBytes))
                }
            }
            .connect(host: target.host, port: target.port)

        let channelBox = NIOLoopBoundBox.makeEmptyBox(valueType: (any Channel).self, eventLoop: loop)
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(Failure.timedOut)
            channelBox.value?.close(promise: nil)
        }
        connected.whenComplete { result in
            switch result {
            case .failure(let error):
                promise.fail(Failure.connection("cannot connect: \(type(of: error))"))
            case .success(let channel):
                channelBox.value = channel
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path)
                head.headers.add(name: "Host", value: target.port == 80 ? target.host : "\(target.host):\(target.port)")
                head.headers.add(name: "User-Agent", value: "agent-mesh/\(MeshVersion.current)")
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Accept", value: "application/json")
                for (name, value) in headers { head.headers.replaceOrAdd(name: name, value: value) }
                head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
                head.headers.replaceOrAdd(name: "Connection", value: "close")
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
        promise.futureResult.whenComplete { _ in
            timer.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
        }
        do {
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(Failure.cancelled)
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .connection("\(type(of: error))")
        }
    }

    /// Collects one response; fails the promise on overflow or an early close.
    private final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        private let promise: EventLoopPromise<Response>
        private let maxBytes: Int
        private var head: HTTPResponseHead?
        private var body: [UInt8] = []

        init(promise: EventLoopPromise<Response>, maxBytes: Int) {
            self.promise = promise
            self.maxBytes = maxBytes
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
            case .body(var buffer):
                guard body.count + buffer.readableBytes <= maxBytes else {
                    promise.fail(Failure.tooLarge)
                    context.close(promise: nil)
                    return
                }
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                if let head {
                    promise.succeed(Response(status: Int(head.status.code), headers: head.headers, body: body))
                } else {
                    promise.fail(Failure.connection("response without a head"))
                }
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(Failure.connection("connection closed before the response ended"))
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(Failure.connection("\(type(of: error))"))
            context.close(promise: nil)
        }
    }
}
