import Foundation
import Hummingbird
import Logging
import MeshCore
import MeshProto
import MeshRuntime
import Metrics
import NIOCore
import Nats
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

/// Live events for HTTP clients as Server-Sent Events: each client gets its own JetStream
/// consumer on stream `MESH_EVENTS` (filtered by subject, starting after the sequence it
/// resumes from, no acks, removed when the client goes), so clients never share a buffer
/// and a slow one delays nobody else. Between the consumer and the connection sits a
/// bounded queue (``bufferCapacity`` events); when it stays full for ``slowClientTimeout``
/// the client is sent `event: error` with code `slow_consumer` and disconnected.
final class LiveEvents: Sendable {
    let js: JetStream
    let subjects: Subjects
    let logger: Logger
    let bufferCapacity: Int
    let slowClientTimeout: Duration
    let maxClients: Int
    let keepAlive: Duration
    private let clients = Atomic<Int>(0)
    private let connected = Gauge(label: "mesh_gateway_event_clients")
    private let disconnectedSlow = Counter(label: "mesh_gateway_event_clients_slow_total")

    init(
        js: JetStream, subjects: Subjects, logger: Logger, bufferCapacity: Int = 1_024, slowClientTimeout: Duration = .seconds(10),
        maxClients: Int = 1_000, keepAlive: Duration = .seconds(5)
    ) {
        self.js = js
        self.subjects = subjects
        self.logger = logger
        self.bufferCapacity = bufferCapacity
        self.slowClientTimeout = slowClientTimeout
        self.maxClients = maxClients
        self.keepAlive = keepAlive
    }

    /// The response streaming the events after `since` (nil: only new ones) that pass `filter`.
    /// - Throws: ``APIError`` 503 when too many clients are connected or JetStream does not answer.
    func response(filter: EventFilter, since: UInt64?, channel: any Channel) async throws -> Response {
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
                _ = try js.addOrUpdateConsumer(stream: stream, config: consumerConfig)
                return try js.pullSubscribe(stream: stream, consumer: name)
            }
        } catch {
            clients.subtract(1, ordering: .relaxed)
            logger.warning("cannot start a live event consumer", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "the event stream is unavailable", retryAfterSeconds: 1)
        }
        connected.record(clients.load(ordering: .relaxed))
        let body = ResponseBody { [self] writer in
            do {
                try await pump(consumer: consumer, filter: filter, channel: channel, writer: &writer)
            } catch {
                await finish(consumer: consumer, name: name)
                throw error
            }
            await finish(consumer: consumer, name: name)
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "keep-alive"], body: body)
    }

    private enum Item: Sendable {
        case event(UInt64, Event)
        case keepAlive
    }

    private final class Flag: Sendable {
        let slow = Atomic<Bool>(false)
    }

    private func pump(consumer: PullConsumer, filter: EventFilter, channel: any Channel, writer: inout any ResponseBodyWriter) async throws {
        let queue = ClientQueue(capacity: bufferCapacity)
        let flag = Flag()
        let (items, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .unbounded)
        let keepAlive = self.keepAlive
        let slowClientTimeout = self.slowClientTimeout
        let logger = self.logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                var fullSince: ContinuousClock.Instant?
                while !Task.isCancelled && consumer.isActive {
                    if queue.isFull {
                        let since = fullSince ?? .now
                        fullSince = since
                        if ContinuousClock.now - since > slowClientTimeout {
                            flag.slow.store(true, ordering: .releasing)
                            // Writes to a client that does not read never finish: close its connection.
                            channel.close(promise: nil)
                            return
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                        continue
                    }
                    fullSince = nil
                    let messages: [JetStreamMessage]
                    do { messages = try await consumer.fetch(batch: 128, expires: keepAlive) } catch {
                        logger.debug("live event fetch ended", metadata: ["error": "\(error)"])
                        return
                    }
                    if messages.isEmpty {
                        continuation.yield(.keepAlive)
                        continue
                    }
                    for message in messages {
                        guard let event = try? Event(serializedBytes: message.payload), filter.matches(event) else { continue }
                        queue.added()
                        continuation.yield(.event(message.metadata?.streamSequence ?? 0, event))
                    }
                }
            }
            do {
                try await writer.write(ByteBuffer(string: ": live events\nretry: 2000\n\n"))
                for await item in items {
                    switch item {
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    case .event(let sequence, let event):
                        queue.removed()
                        try await writer.write(ByteBuffer(string: Self.frame(sequence: sequence, event: event)))
                    }
                }
                if flag.slow.load(ordering: .acquiring) {
                    disconnectedSlow.increment()
                    try? await writer.write(
                        ByteBuffer(string: "event: error\ndata: {\"code\":\"slow_consumer\",\"message\":\"the client did not keep up; reconnect with Last-Event-ID\"}\n\n"))
                }
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    private func finish(consumer: PullConsumer, name: String) async {
        let left = clients.wrappingSubtract(1, ordering: .relaxed).newValue
        connected.record(left)
        try? consumer.unsubscribe()
        let js = self.js
        let stream = subjects.eventsStream
        // Best effort: the consumer also expires on its own after a minute without interest.
        _ = try? await BlockingIO.run { try js.deleteConsumer(stream: stream, name: name) }
    }

    /// One SSE frame: `id` is the stream sequence (what `Last-Event-ID` resumes from).
    static func frame(sequence: UInt64, event: Event) -> String {
        var object: [String: Any] = [
            "seq": Int(clamping: sequence), "event_id": event.id, "domain": event.domain, "type": event.type, "reason": event.reason,
            "attributes": event.attributes, "occurred_at": rfc3339(Date(timeIntervalSince1970: Double(event.timestampUnixMs) / 1000)),
        ]
        if !event.agentId.isEmpty { object["agent"] = event.agentId }
        if !event.nodeId.isEmpty { object["node"] = event.nodeId }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "id: \(sequence)\nevent: \(event.domain).\(event.type)\ndata: \(data)\n\n"
    }
}
