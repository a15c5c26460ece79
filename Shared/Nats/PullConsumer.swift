import CNats
import Dispatch
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
/// private inbox as reply; messages arrive on that inbox, the request ends when N were
/// delivered or with a status message (404, 408, 409). At most one request is open at a
/// time: a fetch first takes what already arrived, returns as soon as it has something, and
/// leaves an open request to serve the next fetch — so a fetch never waits for a full batch,
/// and never holds more than the batch it asked for plus what an earlier request still
/// delivers (bounded by the consumer's MaxAckPending on the server).
///
/// The inbox is an asynchronous cnats subscription: its callback (on cnats' delivery thread)
/// buffers each delivery and wakes the waiting fetch, and the fetch takes everything that
/// arrived by the time it runs. A waiting fetch holds no thread (an earlier version blocked
/// a thread created for every fetch, which cost busy consumers more than their messages).
/// One fetch at a time per consumer object; a second one waiting at once fails with
/// `invalidArgument`.
public final class PullConsumer: @unchecked Sendable {
    // @unchecked: `sub` is an immutable pointer to a cnats subscription (internally
    // locked); the mutable state is in `inbox` (a Mutex); `jetStream` keeps the C
    // connection alive.
    let sub: OpaquePointer
    /// The JetStream context.
    public let jetStream: JetStream
    /// The stream name.
    public let stream: String
    /// The durable consumer name.
    public let durable: String
    private let nextSubject: String
    private let inbox: PullInbox

    /// Longest a pull request stays open on the server after its `expires` before this
    /// side stops waiting for its end (its 408 status normally comes first).
    static let requestGrace: Duration = .seconds(1)
    /// How long a fetch pauses after the server refused a request (409).
    static let refusalPause: Duration = .milliseconds(50)

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
        let subject = jetStream.connection.newInbox()
        let inbox = PullInbox(jetStream: jetStream, subject: subject)
        let context = Unmanaged.passRetained(inbox).toOpaque()
        var sub: OpaquePointer? = nil
        let status = natsConnection_Subscribe(&sub, jetStream.connection.nc, subject, pullOnMessage, context)
        guard status == NATS_OK, let sub else {
            Unmanaged<PullInbox>.fromOpaque(context).release()
            throw NatsError(status: status, operation: "natsConnection_Subscribe")
        }
        if natsSubscription_SetOnCompleteCB(sub, pullOnComplete, context) != NATS_OK {
            // Already closed: the delivery thread may still hold the context; it stays retained.
            inbox.close()
        }
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
        inbox.close()
    }

    /// The inbox the consumer's messages are delivered to (tests send requests to it).
    var deliverSubject: String { inbox.subject }

    /// Fetches up to `batch` messages, waiting up to `expires` for the first.
    /// - Returns: the messages (possibly fewer than `batch`: it returns as soon as some
    ///   arrived); `[]` when none arrived in time or the task was cancelled.
    /// - Throws: `connectionClosed` after ``unsubscribe()`` or when the connection closed;
    ///   `notFound` when the consumer was deleted; `noResponders` without JetStream;
    ///   `invalidArgument` for a bad argument or a second fetch waiting at once.
    /// The corresponding C function is `natsConnection_PublishRequest`.
    public func fetch(batch: Int, expires: Duration) async throws(NatsError) -> [JetStreamMessage] {
        guard batch > 0 else { throw NatsError(code: .invalidArgument, operation: "PullConsumer.fetch", detail: "batch must be positive") }
        guard expires > .zero else { throw NatsError(code: .invalidArgument, operation: "PullConsumer.fetch", detail: "expires must be positive") }
        let deadline = ContinuousClock.now + expires
        while true {
            switch inbox.take(batch: batch) {
            case .messages(let messages): return messages
            case .failed(let error): throw error
            case .refused:
                let pause = min(deadline - .now, Self.refusalPause)
                if pause > .zero { try? await Task.sleep(for: pause) }
            case .empty(let requestOpen):
                let remaining = deadline - .now
                // A request that ended a moment before the deadline is not asked again.
                if remaining < .milliseconds(5) || Task.isCancelled { return [] }
                if !requestOpen { try request(batch: batch, wait: remaining) }
                let waited = await withTaskCancellationHandler {
                    await inbox.wait(until: deadline)
                } onCancel: {
                    inbox.wake()
                }
                if !waited { throw NatsError(code: .invalidArgument, operation: "PullConsumer.fetch", detail: "one fetch at a time per consumer") }
            }
        }
    }

    /// Opens a pull request for `batch` messages lasting `wait`.
    private func request(batch: Int, wait: Duration) throws(NatsError) {
        inbox.opened(batch: batch, endsBy: .now + wait + Self.requestGrace)
        let body = #"{"batch":\#(batch),"expires":\#(wait.nanoseconds)}"#
        let status = body.withCString { text in
            natsConnection_PublishRequest(jetStream.connection.nc, nextSubject, inbox.subject, text, Int32(strlen(text)))
        }
        guard status == NATS_OK else {
            inbox.ended()
            throw NatsError(status: status, operation: "natsConnection_PublishRequest")
        }
    }

    /// An endless sequence of messages, fetched `batch` at a time as the consumer asks
    /// for more (the next fetch starts only when the previous batch has been consumed).
    /// Ends when the task is cancelled or after ``unsubscribe()``; throws on fetch errors.
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

    /// Stops pulling (the durable consumer stays on the server); a waiting fetch ends with
    /// `connectionClosed`. Messages delivered and not yet fetched are dropped; the server
    /// redelivers them after the ack wait.
    /// The corresponding C function is `natsSubscription_Unsubscribe`.
    public func unsubscribe() throws(NatsError) {
        let status = natsSubscription_Unsubscribe(sub)
        inbox.close()
        guard status == NATS_OK || status == NATS_INVALID_SUBSCRIPTION || status == NATS_CONNECTION_CLOSED else {
            throw NatsError(status: status, operation: "natsSubscription_Unsubscribe")
        }
    }

    /// The consumer's current counters.
    /// The corresponding C function is `js_GetConsumerInfo`.
    public func info() throws(NatsError) -> ConsumerInfo {
        try jetStream.consumerInfo(stream: stream, name: durable)
    }
}

/// The delivery side of a ``PullConsumer``: what arrived on its inbox, the open request and
/// the one waiting fetch. cnats holds one retained reference (released by the subscription's
/// on-complete callback); the consumer holds another.
final class PullInbox: @unchecked Sendable {
    // @unchecked: the mutable state is in `state` (a Mutex); `timer` is a dispatch source,
    // whose `schedule` and `cancel` may be called from any thread.
    enum Taken {
        case messages([JetStreamMessage])
        case failed(NatsError)
        /// The last request was refused (409): pause before asking again.
        case refused
        /// Nothing arrived; whether a request is still open.
        case empty(requestOpen: Bool)
    }

    struct State {
        var buffer: [JetStreamMessage] = []
        /// The open pull request: messages it may still deliver and when it surely ended.
        var request: (remaining: Int, endsBy: ContinuousClock.Instant)?
        var refused = false
        /// Why the last request ended, for the next fetch (a deleted consumer, no JetStream).
        var failure: NatsError?
        var closed = false
        var waiter: CheckedContinuation<Bool, Never>?
        /// The waiter's deadline (the timer wakes it then).
        var waitUntil: ContinuousClock.Instant?
        /// When the timer fires next (nil: not armed). A wait re-arms it only for an earlier
        /// deadline; a timer that fires before its waiter is due re-arms itself for it.
        var armedUntil: ContinuousClock.Instant?
    }

    let jetStream: JetStream
    let subject: String
    private let state = Mutex(State())
    private let timer: any DispatchSourceTimer

    init(jetStream: JetStream, subject: String) {
        self.jetStream = jetStream
        self.subject = subject
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.setEventHandler { [weak self] in self?.wakeIfDue() }
        timer.schedule(deadline: .distantFuture)
        timer.activate()
    }

    deinit {
        timer.cancel()
    }

    /// Takes up to `batch` buffered messages, or says why there are none.
    func take(batch: Int) -> Taken {
        state.withLock { state in
            if !state.buffer.isEmpty {
                if state.buffer.count <= batch {
                    defer { state.buffer.removeAll(keepingCapacity: true) }
                    return .messages(state.buffer)
                }
                defer { state.buffer.removeFirst(batch) }
                return .messages(Array(state.buffer.prefix(batch)))
            }
            if let failure = state.failure {
                state.failure = nil
                return .failed(failure)
            }
            if state.closed { return .failed(NatsError(code: .connectionClosed, operation: "PullConsumer.fetch", detail: "subscription closed")) }
            if state.refused {
                state.refused = false
                return .refused
            }
            if let open = state.request, open.endsBy <= .now { state.request = nil }
            return .empty(requestOpen: state.request != nil)
        }
    }

    func opened(batch: Int, endsBy: ContinuousClock.Instant) {
        state.withLock { $0.request = (batch, endsBy) }
    }

    func ended() {
        state.withLock { $0.request = nil }
    }

    /// Waits until something arrives, the request ends, ``wake()`` or `deadline`.
    /// - Returns: false when another fetch is already waiting.
    func wait(until deadline: ContinuousClock.Instant) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let now = ContinuousClock.now
            let outcome = state.withLock { state -> Bool? in
                if state.waiter != nil { return false }
                // Checked under the lock that ``wake()`` takes: a cancellation either is seen
                // here or finds the waiter registered.
                if !state.buffer.isEmpty || state.failure != nil || state.closed || state.refused || state.request == nil || deadline <= now
                    || Task.isCancelled
                {
                    return true
                }
                state.waiter = continuation
                state.waitUntil = deadline
                // Re-arming costs a wake-up of the dispatch manager thread, and a busy consumer
                // waits many times per second with about the same deadline: the timer is
                // moved only for an earlier one. Under the lock, so an earlier waiter's late
                // schedule cannot replace a later one.
                if state.armedUntil.map({ deadline < $0 }) ?? true { arm(&state, for: deadline, now: now) }
                return nil
            }
            if let outcome { continuation.resume(returning: outcome) }
        }
    }

    /// Wakes the waiting fetch, if any.
    func wake() {
        state.withLock { Self.takeWaiter(&$0) }?.resume(returning: true)
    }

    /// The timer fired: wakes a waiter that is due, or arms the timer for one that is not
    /// yet (a later fetch's wait, or a timer that fired a moment early).
    private func wakeIfDue() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            state.armedUntil = nil
            guard let until = state.waitUntil else { return nil }
            let now = ContinuousClock.now
            guard until <= now else {
                arm(&state, for: until, now: now)
                return nil
            }
            return Self.takeWaiter(&state)
        }
        waiter?.resume(returning: true)
    }

    private func arm(_ state: inout State, for deadline: ContinuousClock.Instant, now: ContinuousClock.Instant) {
        state.armedUntil = deadline
        timer.schedule(deadline: .now() + .nanoseconds(Int(max(0, (deadline - now).nanoseconds))))
    }

    private static func takeWaiter(_ state: inout State) -> CheckedContinuation<Bool, Never>? {
        defer {
            state.waiter = nil
            state.waitUntil = nil
        }
        return state.waiter
    }

    /// No more deliveries (unsubscribed, or the connection closed).
    func close() {
        state.withLock { state in
            state.closed = true
            return Self.takeWaiter(&state)
        }?.resume(returning: true)
    }

    /// One delivery, on cnats' delivery thread; takes ownership of `msg`.
    func deliver(_ msg: OpaquePointer) {
        var statusText: UnsafePointer<CChar>? = nil
        if natsMsg_GetDataLength(msg) == 0, natsMsgHeader_Get(msg, "Status", &statusText) == NATS_OK, let statusText {
            let code = String(cString: statusText)
            var descriptionText: UnsafePointer<CChar>? = nil
            let description = natsMsgHeader_Get(msg, "Description", &descriptionText) == NATS_OK ? descriptionText.map { String(cString: $0) } ?? "" : ""
            NatsLibrary.destroy(msg)
            if code == "100" { return }  // idle heartbeat
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                state.request = nil
                switch code {
                case "404", "408": break
                case "503":
                    state.failure = NatsError(code: .noResponders, operation: "PullConsumer.fetch", detail: "JetStream is not available")
                case "409" where description.lowercased().contains("deleted"):
                    state.failure = NatsError(code: .notFound, operation: "PullConsumer.fetch", detail: "consumer deleted")
                default:  // 409 (max waiting, batch too large, a leadership change…)
                    state.refused = true
                }
                return Self.takeWaiter(&state)
            }
            waiter?.resume(returning: true)
            return
        }
        let message = JetStreamMessage(msg: msg, jetStream: jetStream)
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if let open = state.request { state.request = open.remaining > 1 ? (open.remaining - 1, open.endsBy) : nil }
            state.buffer.append(message)
            return Self.takeWaiter(&state)
        }
        waiter?.resume(returning: true)
    }
}

private func pullOnMessage(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let msg else { return }
    guard let closure else {
        NatsLibrary.destroy(msg)
        return
    }
    Unmanaged<PullInbox>.fromOpaque(closure).takeUnretainedValue().deliver(msg)
}

private func pullOnComplete(_ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    let unmanaged = Unmanaged<PullInbox>.fromOpaque(closure)
    unmanaged.takeUnretainedValue().close()
    unmanaged.release()
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
    // @unchecked: `msg` and the cached parts are only touched under `lock`; the other stored
    // properties are immutable values; `jetStream` keeps the connection (needed by acks) alive.
    private let msg: OpaquePointer
    private let lock = NSLock()
    private let jetStream: JetStream
    /// The subject it was published to.
    public let subject: String
    /// The payload.
    public let payload: [UInt8]
    private var parsedHeaders: NatsHeaders?
    private var parsedMetadata: JetStreamMetadata??

    /// The headers, read from the C message on first use (most consumers never look).
    public var headers: NatsHeaders {
        lock.withLock {
            if let parsedHeaders { return parsedHeaders }
            let headers = NatsHeaders(cMessage: msg)
            parsedHeaders = headers
            return headers
        }
    }

    /// Delivery metadata, read from the reply subject on first use; nil only for a malformed
    /// reply subject.
    /// The corresponding C function is `natsMsg_GetMetaData`.
    public var metadata: JetStreamMetadata? {
        lock.withLock {
            if let parsedMetadata { return parsedMetadata }
            var metadata: JetStreamMetadata?
            var meta: UnsafeMutablePointer<jsMsgMetaData>? = nil
            if natsMsg_GetMetaData(&meta, msg) == NATS_OK, let meta {
                metadata = JetStreamMetadata(
                    streamSequence: meta.pointee.Sequence.Stream, consumerSequence: meta.pointee.Sequence.Consumer,
                    numDelivered: meta.pointee.NumDelivered, numPending: meta.pointee.NumPending,
                    timestamp: Date(timeIntervalSince1970: Double(meta.pointee.Timestamp) / 1e9),
                    stream: meta.pointee.Stream.map { String(cString: $0) } ?? "",
                    consumer: meta.pointee.Consumer.map { String(cString: $0) } ?? "")
                jsMsgMetaData_Destroy(meta)
            }
            parsedMetadata = .some(metadata)
            return metadata
        }
    }

    init(msg: OpaquePointer, jetStream: JetStream) {
        self.msg = msg
        self.jetStream = jetStream
        subject = String(cString: natsMsg_GetSubject(msg))
        payload = copyBytes(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))
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

    /// Sends `body` to the message's ack subject once (`final`), or any number of times:
    /// on the main link, or — within a batch (`flush` false for all but the last) — on the
    /// coalescing link.
    private func acknowledge(_ body: String, final: Bool, flush: Bool? = nil) throws(NatsError) {
        lock.lock()
        defer { lock.unlock() }
        if settled { return }
        guard let reply = natsMsg_GetReply(msg) else {
            throw NatsError(code: .invalidArgument, operation: "natsMsg_Ack", detail: "not a JetStream message")
        }
        let status: natsStatus
        let operation: StaticString
        if let flush, let link = jetStream.connection.link {
            (status, operation) = (link.publish(reply, text: body, flush: flush), "natsConn_publish")
        } else {
            status = body.withCString { text in natsConnection_Publish(jetStream.connection.nc, reply, text, Int32(strlen(text))) }
            operation = "natsConnection_Publish"
        }
        guard status == NATS_OK else { throw NatsError(status: status, operation: operation) }
        if final { settled = true }
    }

    /// Acknowledges a batch (fire and forget), written to the server together: one `send`
    /// for the batch on the connection's coalescing link (``NatsOptions/coalescingLink``),
    /// else one per message. Messages acknowledged before are skipped.
    /// - Throws: the first failure; the messages after it are still acknowledged.
    /// The corresponding C function is `natsConn_publish` (cnats-internal; `+ACK`), or
    /// `natsConnection_Publish` without the link.
    public static func ack(_ messages: [JetStreamMessage]) throws(NatsError) {
        var first: NatsError?
        for (index, message) in messages.enumerated() {
            do throws(NatsError) {
                try message.acknowledge("+ACK", final: true, flush: index == messages.count - 1)
            } catch {
                if first == nil { first = error }
            }
        }
        if let first { throw first }
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
        _ = try await jetStream.connection.request(reply, payload: Array("+ACK".utf8), timeout: timeout)
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
