public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle

/// A minimal HTTP server for a process's own `/metrics` (Prometheus text) and `/health`,
/// on an optional port (`--metrics-port`). Any other path is 404; only GET and HEAD.
///
/// The gateway and the collector serve richer HTTP APIs of their own; this one exists so
/// that every process can be scraped directly.
public struct MetricsHTTPServer: Service {
    private let host: String
    private let port: Int
    private let logger: Logger
    private let metrics: @Sendable () -> [UInt8]
    private let health: @Sendable () -> Bool

    /// - Parameters:
    ///   - metrics: renders the Prometheus exposition.
    ///   - health: whether `/health` answers 200 (else 503).
    public init(host: String, port: Int, logger: Logger, metrics: @escaping @Sendable () -> [UInt8], health: @escaping @Sendable () -> Bool) {
        self.host = host
        self.port = port
        self.logger = logger
        self.metrics = metrics
        self.health = health
    }

    public func run() async throws {
        let metrics = self.metrics
        let health = self.health
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(MetricsHandler(metrics: metrics, health: health))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("metrics endpoint listening", metadata: ["mesh.http.address": "\(host):\(port)"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

private final class MetricsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: @Sendable () -> [UInt8]
    let health: @Sendable () -> Bool

    init(metrics: @escaping @Sendable () -> [UInt8], health: @escaping @Sendable () -> Bool) {
        self.metrics = metrics
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        switch (request.method, path) {
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics())
        case (.GET, "/health"), (.HEAD, "/health"):
            let healthy = health()
            (status, contentType, body) = (
                healthy ? .ok : .serviceUnavailable, "application/json",
                Array((healthy ? #"{"status":"ok"}"# : #"{"status":"unavailable"}"#).utf8)
            )
        case (.GET, _), (.HEAD, _):
            (status, contentType, body) = (.notFound, "application/json", Array(#"{"error":{"code":"not_found","message":"no such path"}}"#.utf8))
        default:
            (status, contentType, body) = (
                .methodNotAllowed, "application/json", Array(#"{"error":{"code":"method_not_allowed","message":"only GET and HEAD"}}"#.utf8)
            )
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let closing = request.isKeepAlive ? nil : context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in closing?.close(promise: nil) }
    }
}
