import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import MeshCore
import MeshProto
import MeshRuntime
import Metrics
import NIOCore
import NIOWebSocket
import Nats
import ServiceLifecycle
import Synchronization

/// Which events a live client wants: by domain (`agent`, `group`, `node`, …), by event
/// type (`created`, `failed`, …; needs a domain or matches it in every domain) and by agent id.
struct EventFilter: Sendable, Hashable {
    var domain: String?
    var type: String?
    var agent: String?

    /// The subject filter of the client's consumer: `<prefix>.evt.<domain|*>.<type|*>`, or `<prefix>.evt.>`.
    func subject(_ subjects: Subjects) -> String {
        switch (domain, type) {
        case (nil, nil): subjects.eventsAll
        case (let domain?, nil): "\(subjects.prefix).evt.\(domain).*"
        case (let domain, let type?): "\(subjects.prefix).evt.\(domain ?? "*").\(type)"
        }
    }

    func matches(_ event: Event) -> Bool {
        (agent == nil || event.agentId == agent) && (domain == nil || event.domain == domain) && (type == nil || event.type == type)
    }
}

/// A per-client bounded queue between the JetStream fetcher and the HTTP writer. The
/// fetcher waits while the queue is full; a queue that stays full for the slow-client
/// timeout marks the client slow. Pure bookkeeping, no I/O.
final class ClientQueue: Sendable {
    let capacity: Int
    private let count = Atomic<Int>(0)

    init(capacity: Int) { self.capacity = capacity }

    var isFull: Bool { count.load(ordering: .acquiring) >= capacity }
    func added() { count.add(1, ordering: .releasing) }
    func removed() { count.subtract(1, ordering: .releasing) }
}

/// One transport's encoding of the live stream. ``LiveEvents/stream(_:to:onSlow:)`` owns
/// the consumer, the filter, resume and the bounded queue; a sink only turns what it is
/// handed into bytes on its connection: ``ServerSentEventSink`` (SSE frames) and
/// ``WebSocketEventSink`` (one WebSocket text message per event).
protocol LiveEventSink {
    /// Called once before the first event.
    mutating func start() async throws
    /// One event that passed the filter, with its stream sequence (what a client resumes from).
    mutating func send(sequence: UInt64, event: Event) async throws
    /// Nothing arrived for the keep-alive interval.
    mutating func idle() async throws
}

/// Live events for HTTP clients, as Server-Sent Events (``response(filter:since:channel:)``)
/// or over a WebSocket (``serveWebSocket(filter:since:inbound:outbound:channel:)``): each
/// client gets its own JetStream consumer on stream `MESH_EVENTS` (filtered by subject,
/// starting after the sequence it resumes from, no acks, removed when the client goes), so
/// clients never share a buffer and a slow one delays nobody else. Between the consumer
/// and the connection sits a bounded queue (``bufferCapacity`` events); when it stays full
/// for ``slowClientTimeout`` the client is disconnected with a reason: SSE clients get
/// `event: error` with code `slow_consumer`, WebSocket clients a close frame with code 1013
/// (try again later) and a reason naming the sequence to resume from.
///
/// ```swift
/// let subscription = try await live.subscribe(filter: EventFilter(domain: "agent"), since: 41)
/// var sink = ServerSentEventSink(writer: writer)
/// let end = try await live.stream(subscription, to: &sink) { _ in channel.close(promise: nil) }
/// await live.finish(subscription)
/// ```
final class LiveEvents: Sendable {
    let js: JetStream
    let subjects: Subjects
    let logger: Logger
    let bufferCapacity: Int
    let slowClientTimeout: Duration
    let maxClients: Int
    let keepAlive: Duration
    /// How long a WebSocket client found slow has to take the events already written and
    /// the close frame before its connection is closed without one.
    let slowCloseGrace: Duration
    /// WebSocket close code 1013 (try again later, RFC 6455 registry): sent to a slow client
    /// and when no consumer can be created.
    static let tryAgainLater = WebSocketErrorCode.unknown(1013)
    private let clients = Atomic<Int>(0)
    private let connected = Gauge(label: "mesh_gateway_event_clients")
    private let disconnectedSlow = Counter(label: "mesh_gateway_event_clients_slow_total")

    init(
        js: JetStream, subjects: Subjects, logger: Logger, bufferCapacity: Int = 1_024, slowClientTimeout: Duration = .seconds(10),
        maxClients: Int = 1_000, keepAlive: Duration = .seconds(5), slowCloseGrace: Duration = .seconds(5)
    ) {
        self.js = js
        self.subjects = subjects
        self.logger = logger
        self.bufferCapacity = bufferCapacity
        self.slowClientTimeout = slowClientTimeout
        self.maxClients = maxClients
        self.keepAlive = keepAlive
        self.slowCloseGrace = slowCloseGrace
    }

    /// One client's consumer.
    struct Subscription: Sendable {
        let consumer: PullConsumer
        let name: String
        let filter: EventFilter
        /// The sequence the client resumes after (nil: only new events).
        let since: UInt64?
    }

    /// How a stream ended.
    enum StreamEnd: Sendable, Equatable {
        /// The consumer stopped (NATS gone, the consumer deleted) or the task was cancelled.
        case ended
        /// The client did not keep up; it resumes without a gap after `resumeAfter`: the last
        /// event it was sent, else where it started.
        case slow(resumeAfter: UInt64)
    }

    /// Whether another client may connect now (a hint for refusing early; ``subscribe(filter:since:)`` enforces it).
    var hasRoom: Bool { clients.load(ordering: .relaxed) < maxClients }

    /// Counts the client in and creates its consumer: events after `since` (nil: only new
    /// ones) on the subject of `filter`. Pair with ``finish(_:)``.
    /// - Throws: ``APIError`` 503 when too many clients are connected or JetStream does not answer.
    func subscribe(filter: EventFilter, since: UInt64?) async throws -> Subscription {
        guard clients.wrappingAdd(1, ordering: .relaxed).newValue <= maxClients else {
            clients.subtract(1, ordering: .relaxed)
            throw APIError(.serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "too many live event clients", retryAfterSeconds: 5)
        }
        let name = "gateway-live-" + TimeOrderedID.make().lowercased().filter { $0.isLetter || $0.isNumber }
        var config = ConsumerConfig(durableName: name, filterSubject: filter.subject(subjects))
        config.ackPolicy = .none
        config.deliverPolicy = since.map { .byStartSequence($0 + 1) } ?? .new
        config.inactiveThreshold = .seconds(60)
        config.description = "live events of one gateway HTTP client"
        let stream = subjects.eventsStream
        let js = self.js
        let consumerConfig = config
        let consumer: PullConsumer
        do {
            consumer = try await BlockingIO.run {
                return try js.pullSubscribe(try js.addOrUpdateConsumer(stream: stream, config: consumerConfig))
            }
        } catch {
            clients.subtract(1, ordering: .relaxed)
            logger.warning("cannot start a live event consumer", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "the event stream is unavailable", retryAfterSeconds: 1)
        }
        connected.record(clients.load(ordering: .relaxed))
        return Subscription(consumer: consumer, name: name, filter: filter, since: since)
    }

    /// Counts the client out and removes its consumer.
    func finish(_ subscription: Subscription) async {
        let left = clients.wrappingSubtract(1, ordering: .relaxed).newValue
        connected.record(left)
        try? subscription.consumer.unsubscribe()
        let js = self.js
        let stream = subjects.eventsStream
        let name = subscription.name
        // Best effort: the consumer also expires on its own after a minute without interest.
        _ = try? await BlockingIO.run { try js.deleteConsumer(stream: stream, name: name) }
    }

    // MARK: Server-Sent Events

    /// The response streaming the events after `since` (nil: only new ones) that pass `filter`.
    /// - Throws: ``APIError`` 503 when too many clients are connected or JetStream does not answer.
    func response(filter: EventFilter, since: UInt64?, channel: any Channel) async throws -> Response {
        let subscription = try await subscribe(filter: filter, since: since)
        let body = ResponseBody { [self] writer in
            var sink = ServerSentEventSink(writer: writer)
            let end: StreamEnd
            do {
                // Writes to a client that does not read never finish: close its connection.
                end = try await stream(subscription, to: &sink) { _ in channel.close(promise: nil) }
            } catch {
                await finish(subscription)
                throw error
            }
            if case .slow = end {
                try? await sink.slowConsumer()
            }
            await finish(subscription)
            writer = sink.writer
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "keep-alive"], body: body)
    }

    // MARK: WebSocket

    /// Serves one upgraded WebSocket connection: the same events as ``response(filter:since:channel:)``,
    /// one text message each (the SSE `data` JSON, whose `seq` is the id to resume from).
    /// Returns when the client closes or goes away, the gateway shuts down (the WebSocket
    /// handler sends the close frame), the consumer ends (close 1011), or the client is too
    /// slow (close 1013 with a reason naming the sequence to resume from). Messages the
    /// client sends are read and dropped (pings are answered by the WebSocket handler).
    func serveWebSocket(
        filter: EventFilter, since: UInt64?, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel
    ) async {
        let subscription: Subscription
        do { subscription = try await subscribe(filter: filter, since: since) } catch {
            try? await outbound.close(LiveEvents.tryAgainLater, reason: (error as? APIError)?.message ?? "the event stream is unavailable")
            return
        }
        enum Ended: Sendable {
            case client
            case stream(StreamEnd)
            case failed
            case timeout
        }
        let grace = slowCloseGrace
        let logger = self.logger
        // Gateway shutdown: the WebSocket handler sends its close frame; this ends the
        // consumer at once instead of waiting for the client to answer it.
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Ended.self) { group in
                group.addTask {
                    // The client's side: it only needs to send pings (answered by the handler)
                    // and its close; anything else is dropped. Ends at its close or disconnect.
                    do {
                        for try await _ in inbound {}
                    } catch {
                        logger.debug("WebSocket client read ended", metadata: ["error": "\(error)"])
                    }
                    return .client
                }
                group.addTask { [self] in
                    var sink = WebSocketEventSink(outbound: outbound)
                    do {
                        let end = try await stream(subscription, to: &sink) { _ in
                            // The writer is blocked on a client that does not read: give it the
                            // grace to take what was written, then close without a close frame.
                            do {
                                try await Task.sleep(for: grace)
                                channel.close(promise: nil)
                            } catch {}
                        }
                        return .stream(end)
                    } catch {
                        return .failed
                    }
                }
                let first = await group.next() ?? .client
                guard case .stream(let end) = first else {
                    group.cancelAll()
                    return
                }
                let code: WebSocketErrorCode
                let reason: String
                switch end {
                case .slow(let last):
                    code = LiveEvents.tryAgainLater
                    reason = "slow_consumer: the client did not keep up; reconnect with since=\(last)"
                case .ended:
                    code = .unexpectedServerError
                    reason = "the event stream ended; reconnect"
                }
                if await !Self.within(grace, { try await outbound.close(code, reason: reason) }) {
                    channel.close(promise: nil)
                }
                // Wait (bounded) for the client's answering close frame, which ends the reader.
                group.addTask {
                    try? await Task.sleep(for: grace)
                    return .timeout
                }
                if case .timeout = await group.next() ?? .timeout {
                    channel.close(promise: nil)
                }
                group.cancelAll()
            }
        }
        await finish(subscription)
    }

    /// Runs `body` for at most `timeout`. - Returns: whether it finished (without throwing) in time.
    static func within(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> Void) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await body()) != nil }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    // MARK: The one pump

    private enum Item: Sendable {
        case event(UInt64, Event)
        case keepAlive
    }

    private final class State: Sendable {
        static let unknown = UInt64.max
        let slow = Atomic<Bool>(false)
        /// The sequence a client resumes after without a gap: the last one handed to the
        /// sink, before that its `since`, or (only new events) the one before the first
        /// queued; ``unknown`` until then.
        let resumeAfter: Atomic<UInt64>

        init(since: UInt64?) { resumeAfter = Atomic(since ?? Self.unknown) }
    }

    /// Streams the events of `subscription` into `sink` until the consumer ends, the sink
    /// fails, the task is cancelled, or the client is too slow: when the queue stays full for
    /// ``slowClientTimeout``, `onSlow` runs (with the sequence to resume after) while the
    /// writer may still be blocked on the connection — it must unblock it (close the
    /// connection) or be cancelled; no further event is sent after it.
    /// - Returns: ``StreamEnd/slow(resumeAfter:)`` for a slow client, else ``StreamEnd/ended``.
    /// - Throws: what the sink throws (the connection failed or was closed).
    func stream<Sink: LiveEventSink>(
        _ subscription: Subscription, to sink: inout Sink, onSlow: @escaping @Sendable (_ resumeAfter: UInt64) async -> Void
    ) async throws -> StreamEnd {
        let consumer = subscription.consumer
        let filter = subscription.filter
        let queue = ClientQueue(capacity: bufferCapacity)
        let state = State(since: subscription.since)
        let (items, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .unbounded)
        let keepAlive = self.keepAlive
        let slowClientTimeout = self.slowClientTimeout
        let logger = self.logger
        let disconnectedSlow = self.disconnectedSlow
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var fullSince: ContinuousClock.Instant?
                while !Task.isCancelled && consumer.isActive {
                    if queue.isFull {
                        let since = fullSince ?? .now
                        fullSince = since
                        if ContinuousClock.now - since > slowClientTimeout {
                            state.slow.store(true, ordering: .releasing)
                            continuation.finish()
                            disconnectedSlow.increment()
                            let resumeAfter = state.resumeAfter.load(ordering: .acquiring)
                            logger.info("live event client too slow; disconnecting", metadata: ["mesh.event.seq": "\(resumeAfter)"])
                            await onSlow(resumeAfter)
                            return
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                        continue
                    }
                    fullSince = nil
                    let messages: [JetStreamMessage]
                    do { messages = try await consumer.fetch(batch: 128, expires: keepAlive) } catch {
                        logger.debug("live event fetch ended", metadata: ["error": "\(error)"])
                        break
                    }
                    if messages.isEmpty {
                        continuation.yield(.keepAlive)
                        continue
                    }
                    for message in messages {
                        guard let event = try? Event(serializedBytes: message.payload), filter.matches(event) else { continue }
                        let sequence = message.metadata?.streamSequence ?? 0
                        _ = state.resumeAfter.compareExchange(
                            expected: State.unknown, desired: sequence > 0 ? sequence - 1 : 0, ordering: .acquiringAndReleasing)
                        queue.added()
                        continuation.yield(.event(sequence, event))
                    }
                }
                continuation.finish()
            }
            do {
                try await sink.start()
                for await item in items {
                    if state.slow.load(ordering: .acquiring) { break }
                    switch item {
                    case .keepAlive:
                        try await sink.idle()
                    case .event(let sequence, let event):
                        queue.removed()
                        try await sink.send(sequence: sequence, event: event)
                        state.resumeAfter.store(sequence, ordering: .releasing)
                    }
                }
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
        if state.slow.load(ordering: .acquiring) {
            return .slow(resumeAfter: state.resumeAfter.load(ordering: .acquiring))
        }
        return .ended
    }

    // MARK: Encoding

    /// The JSON of one event, the same for SSE (`data:`) and WebSocket (one text message):
    /// `seq` is the stream sequence a client resumes from.
    static func json(sequence: UInt64, event: Event) -> String {
        var object: [String: Any] = [
            "seq": Int(clamping: sequence), "event_id": event.id, "domain": event.domain, "type": event.type, "reason": event.reason,
            "attributes": event.attributes, "occurred_at": rfc3339(unixMs: event.timestampUnixMs) ?? rfc3339(Date(timeIntervalSince1970: 0)),
        ]
        if !event.agentId.isEmpty { object["agent"] = event.agentId }
        if !event.nodeId.isEmpty { object["node"] = event.nodeId }
        return String(decoding: GatewayAPI.jsonBytes(object), as: UTF8.self)
    }

    /// One SSE frame: `id` is the stream sequence (what `Last-Event-ID` resumes from).
    static func frame(sequence: UInt64, event: Event) -> String {
        "id: \(sequence)\nevent: \(event.domain).\(event.type)\ndata: \(json(sequence: sequence, event: event))\n\n"
    }
}

/// Server-Sent Events: a comment and the retry hint first, `id:`/`event:`/`data:` frames,
/// comments as keep-alives.
struct ServerSentEventSink: LiveEventSink {
    var writer: any ResponseBodyWriter

    mutating func start() async throws { try await writer.write(ByteBuffer(string: ": live events\nretry: 2000\n\n")) }
    mutating func send(sequence: UInt64, event: Event) async throws {
        try await writer.write(ByteBuffer(string: LiveEvents.frame(sequence: sequence, event: event)))
    }
    mutating func idle() async throws { try await writer.write(ByteBuffer(string: ": keep-alive\n\n")) }

    /// The last frame to a slow client (best effort: it may not be read).
    mutating func slowConsumer() async throws {
        try await writer.write(
            ByteBuffer(string: "event: error\ndata: {\"code\":\"slow_consumer\",\"message\":\"the client did not keep up; reconnect with Last-Event-ID\"}\n\n"))
    }
}

/// WebSocket: one text message per event carrying ``LiveEvents/json(sequence:event:)``;
/// nothing when idle (the WebSocket handler pings the client on its own schedule).
struct WebSocketEventSink: LiveEventSink {
    let outbound: WebSocketOutboundWriter

    func start() async throws {}
    func send(sequence: UInt64, event: Event) async throws { try await outbound.write(.text(LiveEvents.json(sequence: sequence, event: event))) }
    func idle() async throws {}
}
