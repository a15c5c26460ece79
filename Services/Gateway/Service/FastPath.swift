import Foundation
import HTTPTypes
import MeshCore
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The gateway's two most frequent requests — `GET /health` and an action,
/// `POST /api/v1/agents/{id}/actions/{name}` — answered on the connection's event loop,
/// without the router's task per request.
///
/// The handler sits in each HTTP/1.1 connection's pipeline between the HTTP codec and the
/// router (``Gateway/services(context:options:)`` adds it). For every request it decides
/// from the head (``GatewayAPI/fastRoute(_:)``) whether it can answer alone:
/// - **yes** — the route is one of the two; no `Expect` header and no `Connection` header
///   other than `keep-alive` or `close` (the connection then closes after the answer); no
///   query but an action's `timeout_ms` within its range; no percent-encoding; the id and action name are valid; the key is in the key cache
///   with the operator role; NATS is connected; the rate limiter admits it. The body is
///   collected (up to `--max-body-bytes`), the action goes out through
///   ``ActionClient/act(_:action:payload:timeout:completion:)``, and its answer is written
///   back on the event loop. Audit, metrics and the error shape are the router's
///   (``GatewayAPI/record(_:status:principal:target:requestID:started:)``, ``APIError``).
/// - **no** — everything else, including every error the router decides (401, 403, 400,
///   413, 429, 503): the request's parts go on to the router unchanged.
///
/// Answers keep the request order of HTTP/1.1: a request is answered here only when the
/// router owes no answer on the connection, and while an answer is pending here, later
/// requests wait until it is written (held: at most ``maxHeldParts`` parts, past which no
/// more reads are asked for).
final class FastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// A request this handler answers: its body so far.
        case collecting(FastRoute, body: ByteBuffer?)
        /// The rest of the current request goes to the router.
        case forwarding
        /// The answer to a request of this handler is pending.
        case answering
        /// An answer to `Connection: close` was written: the connection is closing, later parts are dropped.
        case closing
    }

    /// Parts of later requests held while an answer is pending, before reading stops.
    static let maxHeldParts = 64

    private let api: GatewayAPI
    private var state = State.idle
    /// Requests handed to the router whose response has not ended yet.
    private var routerOwes = 0
    /// Parts read while an answer was pending, and what else waits for the answer.
    private var held = CircularBuffer<HTTPRequestPart>()
    private var readWanted = false
    private var quiesceHeld: Any?
    private var active = true

    init(api: GatewayAPI) {
        self.api = api
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .answering = state {
            held.append(part)
            return
        }
        process(part, context: context)
    }

    private func process(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.closing, _):
            break
        case (.idle, .head(let head)):
            if routerOwes == 0, let route = api.fastRoute(head) {
                state = .collecting(route, body: nil)
            } else {
                forward(part, context: context, newRequest: true)
            }
        case (.collecting(let route, var body), .body(var chunk)):
            let size = (body?.readableBytes ?? 0) + chunk.readableBytes
            guard size <= api.options.maxBodyBytes else {
                // Too large for an answer here: the router answers 413 as it reads on.
                forward(.head(route.head), context: context, newRequest: true)
                if let body { forward(.body(body), context: context, newRequest: false) }
                forward(part, context: context, newRequest: false)
                return
            }
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
            state = .collecting(route, body: body)
        case (.collecting(let route, let body), .end):
            state = .answering
            answer(route, body: body, context: context)
        case (.forwarding, .end):
            state = .idle
            context.fireChannelRead(wrapInboundOut(part))
        case (.forwarding, _), (.idle, _):
            // Parts of a request the router reads (or, for a stray part, rejects).
            context.fireChannelRead(wrapInboundOut(part))
        case (.collecting, .head), (.answering, _):
            // The codec never sends a head inside a request; answering is held above.
            context.fireChannelRead(wrapInboundOut(part))
        }
    }

    private func forward(_ part: HTTPRequestPart, context: ChannelHandlerContext, newRequest: Bool) {
        if newRequest { routerOwes += 1 }
        state = .forwarding
        context.fireChannelRead(wrapInboundOut(part))
        if let event = quiesceHeld {
            quiesceHeld = nil
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func answer(_ route: FastRoute, body: ByteBuffer?, context: ChannelHandlerContext) {
        let closes = route.closes
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        api.answer(route, body: body.map { Array($0.readableBytesView) } ?? []) { response in
            if loop.inEventLoop {
                bound.value.handler.write(response, context: bound.value.context, closes: closes)
            } else {
                loop.execute { bound.value.handler.write(response, context: bound.value.context, closes: closes) }
            }
        }
    }

    private func write(_ response: FastResponse, context: ChannelHandlerContext, closes: Bool) {
        guard active else { return }
        var fields = HTTPFields()
        fields.reserveCapacity(6)
        fields[.contentType] = response.contentType
        fields[.contentLength] = String(response.body.count)
        if let retryAfter = response.retryAfterSeconds { fields[.retryAfter] = String(retryAfter) }
        fields[GatewayAPI.requestIDHeader] = response.requestID
        fields[.date] = HTTPDate.now
        fields[.server] = GatewayAPI.serverName
        context.write(wrapOutboundOut(.head(HTTPResponse(status: response.status, headerFields: fields))), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: response.body))), promise: nil)
        }
        if closes {
            state = .closing
            held.removeAll()
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        state = .idle
        // What arrived meanwhile, in order, until the next answer of this handler.
        while !held.isEmpty {
            if case .answering = state { break }
            process(held.removeFirst(), context: context)
        }
        if case .answering = state { return }
        if let event = quiesceHeld {
            quiesceHeld = nil
            context.fireUserInboundEventTriggered(event)
        }
        if readWanted {
            readWanted = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if case .closing = state { return }
        if case .answering = state, held.count >= Self.maxHeldParts {
            readWanted = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { routerOwes = max(0, routerOwes - 1) }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A graceful shutdown closes idle connections: not while an answer is pending here.
        switch state {
        case .collecting, .answering:
            if event is ChannelShouldQuiesceEvent { quiesceHeld = event } else { context.fireUserInboundEventTriggered(event) }
        case .idle, .forwarding, .closing:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        held.removeAll()
        context.fireChannelInactive()
    }
}

/// A request ``FastPathHandler`` answers, as decided from its head.
struct FastRoute: Sendable {
    enum Kind: Sendable {
        case health
        case action(AgentID, name: String, timeoutMs: Int, principal: Principal)
    }

    let kind: Kind
    let head: HTTPRequest
    /// `Connection: close`: the connection closes after the answer.
    let closes: Bool
    let requestID: String
    let started: ContinuousClock.Instant
}

/// An answer of ``FastPathHandler``.
struct FastResponse: Sendable {
    var status: HTTPResponse.Status
    var contentType: String
    var body: [UInt8]
    var retryAfterSeconds: Int? = nil
    var requestID: String
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), formatted once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static var now: String {
        let date = Date()
        let second = Int(date.timeIntervalSince1970)
        return cache.withLock { cache in
            if cache.second != second {
                let formatter = DateFormatter()
                formatter.locale = Locale(identifier: "en_US_POSIX")
                formatter.timeZone = TimeZone(identifier: "GMT")
                formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
                cache = (second, formatter.string(from: date))
            }
            return cache.text
        }
    }
}
