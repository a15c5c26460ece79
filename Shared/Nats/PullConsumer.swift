import CNats
public import Foundation
import Synchronization

/// A pull subscription bound to a durable JetStream consumer.
///
/// ```swift
/// let consumer = try js.pullSubscribe(stream: "MESH_TASKS", consumer: "shard-7", filter: "mesh.task.7.>")
/// for try await message in consumer.messages(batch: 64) {
///     try handle(message)
///     try message.ack()
/// }
/// ```
///
/// Pull requests are made here rather than by cnats' `natsSubscription_Fetch`: in libnats
/// 3.4 (Debian bookworm) that function writes past its message array when more than half a
/// batch was already delivered by an earlier request (nats.c#749, fixed in 3.9), which
/// corrupted the heap of busy consumers. The protocol is JetStream's: a request
/// `{"batch":N,"expires":ns}` on `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with a
/// private inbox as reply; messages arrive on that inbox (a plain synchronous cnats
/// subscription), the request ends when N were delivered or with a status message (404,
/// 408, 409). At most one request is open at a time: a fetch first takes what already
/// arrived, returns as soon as it has something, and leaves an open request to serve the
/// next fetch — so a fetch never waits for a full batch, and never holds more than the
/// batch it asked for plus what an earlier request still delivers (bounded by the
/// consumer's MaxAckPending on the server).
///
/// Fetches run on a dedicated thread, so awaiting one never blocks a cooperative thread.
/// One fetch at a time per consumer object.
public final class PullConsumer: @unchecked Sendable {
    // @unchecked: `sub` is an immutable pointer to a cnats subscription (internally
    // locked); `request` is only touched by the one fetch running at a time (callers
    // serialize fetches) under `lock`; `jetStream` keeps the C connection alive.
    let sub: OpaquePointer
    /// The JetStream context.
    public let jetStream: JetStream
    /// The stream name.
    public let stream: String
    /// The durable consumer name.
    public let durable: String
    private let nextSubject: String
    private let inbox: String
    private let lock = NSLock()
    /// The open pull request: messages it may still deliver and when it surely ended.
    private var request: (remaining: Int, endsBy: ContinuousClock.Instant)?
    /// The last request ended with a refusal (409).
    private var refused = false

    /// Longest a pull request stays open on the server after its `expires` before this
    /// side stops waiting for its end (its 408 status normally comes first).
    static let requestGrace: Duration = .seconds(1)

    init(jetStream: JetStream, stream: String, durable: String, filter: String?, exists: Bool = false) throws(NatsError) {
        try SubjectRules.validateName(stream, kind: "stream", "PullConsumer.init")
        try SubjectRules.validateName(durable, kind: "consumer", "PullConsumer.init")
        if let filter { try SubjectRules.validateSubscribe(filter, "PullConsumer.init") }
        // Bind to the consumer (unless the caller has just created it); with a filter,
        // create it when missing.
        if !exists {
            do {
                _ = try jetStream.consumerInfo(stream: stream, name: durable)
            } catch where error.code == .notFound && filter != nil {
                _ = try jetStream.addOrUpdateConsumer(stream: stream, config: ConsumerConfig(durableName: durable, filterSubject: filter))
            }
        }
        let inbox = jetStream.connection.newInbox()
        var sub: OpaquePointer? = nil
        try natsCall("natsConnection_SubscribeSync") { natsConnection_SubscribeSync(&sub, jetStream.connection.nc, inbox) }
        guard let sub else { throw NatsError(code: .invalidArgument, operation: "natsConnection_SubscribeSync", detail: "no subscription") }
        // What can arrive is bounded by the requests made (and the consumer's MaxAckPending);
        // the limits only keep cnats from dropping messages it was asked for.
        _ = natsSubscription_SetPendingLimits(sub, 1_000_000, 1 << 30)
        self.sub = sub
        self.jetStream = jetStream
        self.stream = stream
        self.durable = durable
        self.inbox = inbox
        self.nextSubject = "\(jetStream.apiPrefix).CONSUMER.MSG.NEXT.\(stream).\(durable)"
    }

    deinit {
        natsSubscription_Destroy(sub)
    }

    /// The inbox the consumer's messages are delivered to (tests send requests to it).
    var deliverSubject: String { inbox }

    /// Fetches up to `batch` messages, waiting up to `expires` for the first.
    /// - Returns: the messages (possibly fewer than `batch`: it returns as soon as some
    ///   arrived); `[]` when none arrived in time.
    /// The corresponding C functions are `natsConnection_PublishRequest` and
    /// `natsSubscription_NextMsg`.
    public func fetch(batch: Int, expires: Duration) async throws(NatsError) -> [JetStreamMessage] {
        guard batch > 0 else { throw NatsError(code: .invalidArgument, operation: "PullConsumer.fetch", detail: "batch must be positive") }
        guard expires > .zero else { throw NatsError(code: .invalidArgument, operation: "PullConsumer.fetch", detail: "expires must be positive") }
        let result = await BlockingCall.run("nats-fetch") { () -> Result<[JetStreamMessage], NatsError> in
            self.lock.lock()
            defer { self.lock.unlock() }
            return self.fetchBlocking(batch: batch, expires: expires)
        }
        return try result.get()
    }

    /// One message taken off the inbox.
    private enum Delivery {
        case message(JetStreamMessage)
        /// A status that ends the open request; `error` when it means the consumer is gone.
        case ended(NatsError?)
        case none
    }

    private func fetchBlocking(batch: Int, expires: Duration) -> Result<[JetStreamMessage], NatsError> {
        let clock = ContinuousClock()
        let deadline = clock.now + expires
        var messages: [JetStreamMessage] = []
        // What already arrived: answers of an earlier request.
        while messages.count < batch, pendingCount > 0 {
            if case .message(let message) = next(timeout: nil) { messages.append(message) }
        }
        if !messages.isEmpty { return .success(messages) }
        var failure: NatsError?
        while true {
            let now = clock.now
            if let open = request, open.endsBy <= now { request = nil }
            if request == nil {
                if now >= deadline { break }
                let wait = deadline - now
                let body = #"{"batch":\#(batch),"expires":\#(wait.nanoseconds)}"#
                let status = body.withCString { text in
                    natsConnection_PublishRequest(jetStream.connection.nc, nextSubject, inbox, text, Int32(strlen(text)))
                }
                guard status == NATS_OK else { return .failure(NatsError(status: status, operation: "natsConnection_PublishRequest")) }
                request = (batch, now + wait + Self.requestGrace)
            }
            let remaining = deadline - clock.now
            guard remaining > .zero else { break }
            switch next(timeout: remaining) {
            case .message(let message):
                messages.append(message)
                // Take what else is already here, without waiting.
                while messages.count < batch, pendingCount > 0 {
                    if case .message(let more) = next(timeout: nil) { messages.append(more) }
                }
                return .success(messages)
            case .ended(let error):
                if let error { failure = error }
                if failure != nil { return .failure(failure!) }
                if refused {
                    // The server refused the request (409: too many waiting, batch too
                    // large, a leadership change): pause rather than ask again at once.
                    refused = false
                    let pause = min(deadline - clock.now, .milliseconds(50))
                    if pause > .zero { usleep(UInt32(pause.timeoutMilliseconds) * 1_000) }
                }
            case .none:
                if !natsSubscription_IsValid(sub) {
                    return .failure(NatsError(code: .connectionClosed, operation: "natsSubscription_NextMsg", detail: "subscription closed"))
                }
            }
        }
        return .success(messages)
    }

    /// Messages delivered to the inbox and not yet taken.
    /// The corresponding C function is `natsSubscription_GetPending`.
    private var pendingCount: Int {
        var count: Int32 = 0
        var bytes: Int32 = 0
        return natsSubscription_GetPending(sub, &count, &bytes) == NATS_OK ? Int(count) : 0
    }

    /// Takes the next message off the inbox (`timeout` nil: only one already there) and
    /// accounts it to the open request.
    private func next(timeout: Duration?) -> Delivery {
        var msg: OpaquePointer? = nil
        let milliseconds: Int64 = timeout.map { max(1, $0.timeoutMilliseconds) } ?? 0
        let status = natsSubscription_NextMsg(&msg, sub, milliseconds)
        if status == NATS_NO_RESPONDERS {
            request = nil
            return .ended(NatsError(code: .noResponders, operation: "PullConsumer.fetch", detail: "JetStream is not available"))
        }
        guard status == NATS_OK, let msg else { return .none }
        var statusText: UnsafePointer<CChar>? = nil
        if natsMsgHeader_Get(msg, "Status", &statusText) == NATS_OK, let statusText, natsMsg_GetDataLength(msg) == 0 {
            let code = String(cString: statusText)
            var descriptionText: UnsafePointer<CChar>? = nil
            let description = natsMsgHeader_Get(msg, "Description", &descriptionText) == NATS_OK ? descriptionText.map { String(cString: $0) } ?? "" : ""
            NatsLibrary.destroy(msg)
            switch code {
            case "100": return .none  // idle heartbeat
            case "404", "408": request = nil
            case "409" where description.lowercased().contains("deleted"):
                request = nil
                return .ended(NatsError(code: .notFound, operation: "PullConsumer.fetch", detail: "consumer deleted"))
            default:  // 409 (max waiting, batch too large, leadership change…)
                request = nil
                refused = true
            }
            return .ended(nil)
        }
        if let open = request {
            request = open.remaining > 1 ? (open.remaining - 1, open.endsBy) : nil
        }
        return .message(JetStreamMessage(msg: msg, consumer: self))
    }

    /// An endless sequence of messages, fetched `batch` at a time as the consumer asks
    /// for more (the next fetch starts only when the previous batch has been consumed).
    /// Ends when the task is cancelled or after ``unsubscribe()``; throws on fetch errors.
    /// Cancellation takes effect after the fetch in progress (at most `expires`).
    /// The corresponding C function is `natsSubscription_NextMsg`.
    public func messages(batch: Int, expires: Duration = .seconds(2)) -> AsyncThrowingStream<JetStreamMessage, any Error> {
        let buffer = Mutex<[JetStreamMessage]>([])
        return AsyncThrowingStream(unfolding: { () async throws -> JetStreamMessage? in
            while true {
                if Task.isCancelled || !self.isActive { return nil }
                let next = buffer.withLock { $0.isEmpty ? nil : $0.removeFirst() }
                if let next { return next }
                let fetched: [JetStreamMessage]
                do throws(NatsError) {
                    fetched = try await self.fetch(batch: batch, expires: expires)
                } catch {
                    if !self.isActive || error.code == .connectionClosed || error.code == .invalidArgument { return nil }
                    throw error
                }
                buffer.withLock { $0.append(contentsOf: fetched) }
            }
        })
    }

    /// Whether the subscription is still active.
    /// The corresponding C function is `natsSubscription_IsValid`.
    public var isActive: Bool { natsSubscription_IsValid(sub) }

    /// Stops pulling (the durable consumer stays on the server). Messages delivered and not
    /// yet fetched are dropped; the server redelivers them after the ack wait.
    /// The corresponding C function is `natsSubscription_Unsubscribe`.
    public func unsubscribe() throws(NatsError) {
        let status = natsSubscription_Unsubscribe(sub)
        guard status == NATS_OK || status == NATS_INVALID_SUBSCRIPTION || status == NATS_CONNECTION_CLOSED else {
            throw NatsError(status: status, operation: "natsSubscription_Unsubscribe")
        }
    }

    /// The consumer's current counters.
    /// The corresponding C function is `js_GetConsumerInfo`.
    public func info() throws(NatsError) -> ConsumerInfo {
        try jetStream.consumerInfo(stream: stream, name: durable)
    }

    /// Publishes an acknowledgement body (`+ACK`, `-NAK`, `+WPI`, `+TERM`) to a message's
    /// reply subject.
    /// The corresponding C function is `natsConnection_Publish`.
    func sendAck(_ reply: String, _ body: String) throws(NatsError) {
        let status = body.withCString { text in natsConnection_Publish(jetStream.connection.nc, reply, text, Int32(strlen(text))) }
        guard status == NATS_OK else { throw NatsError(status: status, operation: "natsConnection_Publish") }
    }
}

/// JetStream delivery metadata of a message (parsed from its reply subject).
public struct JetStreamMetadata: Sendable, Equatable {
    /// The message's sequence in the stream.
    public var streamSequence: UInt64
    /// The delivery's sequence in the consumer.
    public var consumerSequence: UInt64
    /// How many times it has been delivered (1 on first delivery).
    public var numDelivered: UInt64
    /// Messages still pending for the consumer after this one.
    public var numPending: UInt64
    /// When the stream stored it.
    public var timestamp: Date
    /// The stream name.
    public var stream: String
    /// The consumer name.
    public var consumer: String
}

/// A message delivered by a JetStream consumer. It owns the C message until it is
/// released, so it can be acknowledged later from any task; acknowledge it once.
public final class JetStreamMessage: @unchecked Sendable, CustomStringConvertible {
    // @unchecked: `msg` is only touched under `lock`; the other stored properties are
    // immutable values; `consumer` keeps the subscription (needed by acks) alive.
    private let msg: OpaquePointer
    private let lock = NSLock()
    private let consumer: PullConsumer
    /// The subject it was published to.
    public let subject: String
    /// The payload.
    public let payload: [UInt8]
    /// The headers.
    public let headers: NatsHeaders
    /// Delivery metadata; nil only for a malformed reply subject.
    public let metadata: JetStreamMetadata?

    init(msg: OpaquePointer, consumer: PullConsumer) {
        self.msg = msg
        self.consumer = consumer
        subject = String(cString: natsMsg_GetSubject(msg))
        payload = copyBytes(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))
        headers = NatsHeaders(cMessage: msg)
        var meta: UnsafeMutablePointer<jsMsgMetaData>? = nil
        if natsMsg_GetMetaData(&meta, msg) == NATS_OK, let meta {
            metadata = JetStreamMetadata(
                streamSequence: meta.pointee.Sequence.Stream, consumerSequence: meta.pointee.Sequence.Consumer,
                numDelivered: meta.pointee.NumDelivered, numPending: meta.pointee.NumPending,
                timestamp: Date(timeIntervalSince1970: Double(meta.pointee.Timestamp) / 1e9),
                stream: meta.pointee.Stream.map { String(cString: $0) } ?? "",
                consumer: meta.pointee.Consumer.map { String(cString: $0) } ?? "")
            jsMsgMetaData_Destroy(meta)
        } else {
            metadata = nil
        }
    }

    deinit {
        NatsLibrary.destroy(msg)
    }

    public var description: String {
        "JetStreamMessage(subject: \(subject), bytes: \(payload.count), seq: \(metadata?.streamSequence ?? 0))"
    }

    /// Whether a final acknowledgement (ack, nak, term) was sent: later ones are no-ops.
    private var settled = false

    /// The reply subject acknowledgements go to.
    private var reply: String? { natsMsg_GetReply(msg).map { String(cString: $0) } }

    /// Sends `body` to the message's ack subject once (`final`), or any number of times.
    private func acknowledge(_ body: String, final: Bool) throws(NatsError) {
        lock.lock()
        defer { lock.unlock() }
        if settled { return }
        guard let reply else { throw NatsError(code: .invalidArgument, operation: "natsMsg_Ack", detail: "not a JetStream message") }
        try consumer.sendAck(reply, body)
        if final { settled = true }
    }

    /// Acknowledges (fire and forget).
    /// The corresponding C function is `natsConnection_Publish` (`+ACK`).
    public func ack() throws(NatsError) {
        try acknowledge("+ACK", final: true)
    }

    /// Acknowledges and waits for the server to confirm it.
    /// The corresponding C function is `natsConnection_Request` (`+ACK`).
    public func ackSync(timeout: Duration = .seconds(5)) async throws(NatsError) {
        if lock.withLock({ settled }) { return }
        guard let reply else { throw NatsError(code: .invalidArgument, operation: "natsMsg_AckSync", detail: "not a JetStream message") }
        _ = try await consumer.jetStream.connection.request(reply, payload: Array("+ACK".utf8), timeout: timeout)
        lock.withLock { settled = true }
    }

    /// Negative acknowledgement: redeliver, after `delay` when given.
    /// The corresponding C function is `natsConnection_Publish` (`-NAK`).
    public func nak(delay: Duration? = nil) throws(NatsError) {
        if let delay, delay > .zero {
            try acknowledge(#"-NAK {"delay":\#(delay.nanoseconds)}"#, final: true)
        } else {
            try acknowledge("-NAK", final: true)
        }
    }

    /// Work in progress: resets the redelivery timer (may be sent many times).
    /// The corresponding C function is `natsConnection_Publish` (`+WPI`).
    public func inProgress() throws(NatsError) {
        try acknowledge("+WPI", final: false)
    }

    /// Terminates: never redeliver this message.
    /// The corresponding C function is `natsConnection_Publish` (`+TERM`).
    public func term() throws(NatsError) {
        try acknowledge("+TERM", final: true)
    }
}
