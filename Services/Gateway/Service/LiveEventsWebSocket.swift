import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import MeshCore
import NIOCore
import NIOHTTP1

/// Live events over WebSocket at `GET /api/v1/events`: the HTTP/1.1 upgrade is decided here,
/// before the router sees the request (``Gateway`` builds the server with
/// `HTTPServerBuilder.http1WebSocketUpgrade(configuration:shouldUpgrade:)`), and the
/// connection is then served by ``LiveEvents/serveWebSocket(filter:since:inbound:outbound:channel:)``
/// — the same consumer, filters, resume and bounded queue as the SSE stream.
///
/// The upgrade passes the same gate as every HTTP request (``GatewayAPI/admit(_:authorization:principal:)``,
/// then ``GatewayAPI/record(_:status:principal:target:requestID:started:)`` for the audit log
/// and metrics). The key comes from `Authorization: Bearer <key>`, or — for browsers, whose
/// WebSocket API cannot set headers — from the subprotocol list: a client offers
/// `mesh.events.v1` and `bearer.<key>`; the gateway selects `mesh.events.v1`, so the key is
/// never echoed. `bearer.<key>` without `mesh.events.v1` is a 400 (a browser would reject
/// an answer that selects no protocol). A refused upgrade is answered with its status and
/// the JSON error shape (``RefusedUpgradeResponse``).
///
/// ```
/// websocat -H 'Authorization: Bearer mesh_…' 'ws://127.0.0.1:8080/api/v1/events?domain=agent&since=41'
/// new WebSocket("ws://host/api/v1/events?domain=agent", ["mesh.events.v1", "bearer." + key])
/// ```
extension GatewayAPI {
    /// The subprotocol the gateway selects when a client offers it.
    static let eventsSubprotocol = "mesh.events.v1"
    /// Prefix of the subprotocol that carries an API key (`bearer.<key>`).
    static let bearerSubprotocolPrefix = "bearer."

    /// The WebSocket side of the server: inbound frames at most 1 KiB (clients send nothing
    /// but pings and their close), a ping every 30 s (a client that does not answer is closed),
    /// 5 s for the client's close frame after ours.
    static let webSocketConfiguration = WebSocketServerConfiguration(
        maxFrameSize: 1 << 10, autoPing: .enabled(timePeriod: .seconds(30)), closeTimeout: .seconds(5))

    /// Whether to upgrade a request that asked for a WebSocket: only `GET /api/v1/events`,
    /// with a key of role viewer or higher, a valid filter and NATS connected.
    /// - Returns: the upgrade (with `Sec-WebSocket-Protocol: mesh.events.v1` when offered, and
    ///   `X-Request-ID`) and the connection's handler; or `.dontUpgrade` after arranging the
    ///   error answer (401, 403, 400, 404, 405, 429, 503).
    func shouldUpgrade(
        _ head: HTTPRequest, channel: any Channel
    ) async -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        let started = ContinuousClock.now
        let requestID = Self.requestID(head.headerFields)
        let uri = URI(head.path ?? "/")
        guard let route = GatewayRoutes.all.first(where: { $0.operation == .liveEvents }), uri.path == route.path else {
            return await Self.refuse(
                APIError(.notFound, code: MeshError.Code.notFound.rawValue, "no WebSocket endpoint at \(uri.path.prefix(200)); live events are at /api/v1/events"),
                channel: channel, requestID: requestID)
        }
        guard head.method == .get else {
            return await Self.refuse(APIError(.methodNotAllowed, code: "method_not_allowed", "a WebSocket upgrade is a GET"), channel: channel, requestID: requestID)
        }
        var principal: Principal?
        do {
            let protocols = Self.offeredSubprotocols(head.headerFields)
            let authorization = try Self.webSocketAuthorization(head.headerFields, offered: protocols)
            try await admit(route, authorization: authorization, principal: &principal)
            let (filter, since) = try Self.liveEventQuery(uri, headers: head.headerFields)
            try requireNATS()
            guard live.hasRoom else {
                throw APIError(.serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "too many live event clients", retryAfterSeconds: 5)
            }
            var headers: HTTPFields = [Self.requestIDHeader: requestID]
            if protocols.contains(Self.eventsSubprotocol) { headers[.secWebSocketProtocol] = Self.eventsSubprotocol }
            record(route, status: 101, principal: principal, target: nil, requestID: requestID, started: started)
            let live = self.live
            return .upgrade(headers) { inbound, outbound, _ in
                await live.serveWebSocket(filter: filter, since: since, inbound: inbound, outbound: outbound, channel: channel)
            }
        } catch {
            let apiError = failure(error, route, requestID: requestID)
            record(route, status: Int(apiError.status.code), principal: principal, target: nil, requestID: requestID, started: started)
            return await Self.refuse(apiError, channel: channel, requestID: requestID)
        }
    }

    /// The subprotocols a client offered (`Sec-WebSocket-Protocol`, comma-separated, possibly repeated).
    static func offeredSubprotocols(_ headers: HTTPFields) -> [String] {
        headers[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    /// The `Authorization` value to check: the header when sent, else `Bearer <key>` from a
    /// `bearer.<key>` subprotocol, else nil (→ 401).
    /// - Throws: ``APIError`` 400 when `bearer.<key>` is offered without `mesh.events.v1`.
    static func webSocketAuthorization(_ headers: HTTPFields, offered protocols: [String]) throws -> String? {
        if let header = headers[.authorization] { return header }
        guard let bearer = protocols.first(where: { $0.hasPrefix(bearerSubprotocolPrefix) }) else { return nil }
        guard protocols.contains(eventsSubprotocol) else {
            throw APIError.badRequest("offer subprotocol \(eventsSubprotocol) together with bearer.<key> (the gateway selects \(eventsSubprotocol))")
        }
        return "Bearer " + bearer.dropFirst(bearerSubprotocolPrefix.count)
    }

    /// Refuses an upgrade with `error`'s status and JSON body.
    ///
    /// The WebSocket upgrader answers every refused upgrade with an empty 400 of its own; the
    /// handler added here sits in front of the HTTP codec the upgrader then adds, and
    /// rewrites that answer.
    static func refuse(
        _ error: APIError, channel: any Channel, requestID: String
    ) async -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        do {
            try await channel.pipeline.addHandler(RefusedUpgradeResponse(error: error, requestID: requestID)).get()
        } catch {
            // The connection is gone: nobody is left to answer.
        }
        return .dontUpgrade
    }
}

/// Turns the answer to a refused WebSocket upgrade (the upgrader's empty 400) into the
/// gateway's answer: the error's status, `Content-Type: application/json`, `Retry-After`
/// for 429/503, `X-Request-ID`, and the body `{"error":{"code":…,"message":…}}`. The
/// connection is closed after it, as the upgrader does.
final class RefusedUpgradeResponse: ChannelOutboundHandler, RemovableChannelHandler, Sendable {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let status: HTTPResponseStatus
    let headers: HTTPHeaders
    let body: [UInt8]

    init(error: APIError, requestID: String) {
        status = HTTPResponseStatus(statusCode: Int(error.status.code), reasonPhrase: error.status.reasonPhrase)
        body = error.body
        var headers = HTTPHeaders([
            ("Content-Type", "application/json"), ("Content-Length", String(body.count)), ("Connection", "close"),
            ("X-Request-ID", requestID),
        ])
        if let retry = error.retryAfterSeconds { headers.add(name: "Retry-After", value: String(retry)) }
        self.headers = headers
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: promise)
        case .body:
            promise?.succeed(())
        case .end(let trailers):
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            context.write(wrapOutboundOut(.end(trailers)), promise: promise)
        }
    }
}
