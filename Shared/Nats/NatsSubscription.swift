import CNats
import Logging
import Synchronization

/// Context shared by a subscription and the cnats delivery thread. cnats holds one
/// retained reference, released by the on-complete callback (after the last delivery).
final class SubscriptionBox: Sendable {
    let channel: BoundedChannel<NatsMessage>?
    let handler: (@Sendable (NatsMessage) -> Void)?
    let core: ConnectionCore
    let subject: String
    let dropped = Atomic<Int>(0)
    let overflowing = Atomic<Bool>(false)
    let completed = CompletionSignal()

    init(channel: BoundedChannel<NatsMessage>?, handler: (@Sendable (NatsMessage) -> Void)?, core: ConnectionCore, subject: String) {
        self.channel = channel
        self.handler = handler
        self.core = core
        self.subject = subject
    }

    /// Runs the handler (with ``DeliveryHint`` set from `sub`'s queue), or buffers `message`.
    func deliver(_ message: NatsMessage, from sub: OpaquePointer?) {
        if let handler {
            DeliveryHint.delivering(sub) { handler(message) }
            return
        }
        guard let channel else { return }
        switch channel.offer(message) {
        case .enqueued:
            if overflowing.load(ordering: .relaxed) { overflowing.store(false, ordering: .relaxed) }
        case .dropped:
            dropped.add(1, ordering: .relaxed)
            if !overflowing.exchange(true, ordering: .relaxed) {
                core.logger.warning("nats subscription buffer full, dropping", metadata: ["nats.subject": "\(subject)"])
                core.emit(
                    .error(
                        NatsError(
                            code: .slowConsumer, operation: "subscription buffer",
                            detail: "subscription \(subject) buffer of \(channel.capacity) full")))
            }
        case .finished:
            break
        }
    }

    func complete() {
        channel?.finish()
        completed.signal()
    }
}

private func subOnMessage(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let msg else { return }
    guard let closure else {
        NatsLibrary.destroy(msg)
        return
    }
    let message = NatsMessage(cMessage: msg)
    NatsLibrary.destroy(msg)
    Unmanaged<SubscriptionBox>.fromOpaque(closure).takeUnretainedValue().deliver(message, from: sub)
}

private func subOnComplete(_ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    let unmanaged = Unmanaged<SubscriptionBox>.fromOpaque(closure)
    unmanaged.takeUnretainedValue().complete()
    unmanaged.release()
}

/// Owns one asynchronous cnats subscription handle.
final class SubscriptionHandle: @unchecked Sendable {
    // @unchecked: `sub` is an immutable pointer to a cnats subscription (internally
    // locked); `connection` keeps the C connection alive for as long as this handle.
    let sub: OpaquePointer
    let box: SubscriptionBox
    let connection: NatsConnection

    init(
        connection: NatsConnection, subject: String, queue: String?, box: SubscriptionBox,
        maxPendingMessages: Int, maxPendingBytes: Int
    ) throws(NatsError) {
        try SubjectRules.validateSubscribe(subject, "natsConnection_Subscribe")
        if let queue { try SubjectRules.validateQueue(queue, "natsConnection_QueueSubscribe") }
        guard maxPendingMessages != 0, maxPendingBytes != 0 else {
            throw NatsError(code: .invalidArgument, operation: "natsSubscription_SetPendingLimits", detail: "zero limit")
        }
        let context = Unmanaged.passRetained(box).toOpaque()
        var sub: OpaquePointer? = nil
        let status: natsStatus
        if let queue {
            status = natsConnection_QueueSubscribe(&sub, connection.nc, subject, queue, subOnMessage, context)
        } else {
            status = natsConnection_Subscribe(&sub, connection.nc, subject, subOnMessage, context)
        }
        guard status == NATS_OK, let sub else {
            Unmanaged<SubscriptionBox>.fromOpaque(context).release()
            throw NatsError(status: status, operation: queue == nil ? "natsConnection_Subscribe" : "natsConnection_QueueSubscribe")
        }
        if natsSubscription_SetOnCompleteCB(sub, subOnComplete, context) != NATS_OK {
            // Already closed (the connection is closing): the delivery thread may still be
            // using the context, so it is left retained; end the sequence ourselves.
            box.complete()
        }
        _ = natsSubscription_SetPendingLimits(
            sub, Int32(clamping: maxPendingMessages), Int32(clamping: maxPendingBytes))
        self.sub = sub
        self.box = box
        self.connection = connection
    }

    deinit {
        natsSubscription_Destroy(sub)
    }

    func unsubscribe() throws(NatsError) {
        let status = natsSubscription_Unsubscribe(sub)
        guard status == NATS_OK || status == NATS_INVALID_SUBSCRIPTION || status == NATS_CONNECTION_CLOSED else {
            throw NatsError(status: status, operation: "natsSubscription_Unsubscribe")
        }
    }

    func beginDrain(timeout: Duration) throws(NatsError) {
        let status = natsSubscription_DrainTimeout(sub, timeout.timeoutMilliseconds)
        guard status == NATS_OK || status == NATS_INVALID_SUBSCRIPTION || status == NATS_CONNECTION_CLOSED else {
            throw NatsError(status: status, operation: "natsSubscription_DrainTimeout")
        }
    }

    func drain(timeout: Duration) async throws(NatsError) {
        try beginDrain(timeout: timeout)
        guard await box.completed.wait(timeout: timeout + .seconds(1)) else {
            throw NatsError(code: .timeout, operation: "natsSubscription_DrainTimeout", detail: "drain did not complete")
        }
    }

    var cDropped: Int {
        var dropped: Int64 = 0
        _ = natsSubscription_GetDropped(sub, &dropped)
        return Int(dropped)
    }

    var cPending: Int {
        var msgs: Int32 = 0
        var bytes: Int32 = 0
        _ = natsSubscription_GetPending(sub, &msgs, &bytes)
        return Int(max(0, msgs))
    }

    var isValid: Bool { natsSubscription_IsValid(sub) }
}

/// A subscription consumed as an `AsyncSequence` of ``NatsMessage``.
///
/// ```swift
/// let sub = try nats.subscribe("mesh.evt.>")
/// for await message in sub { handle(message) }
/// ```
///
/// Messages pass through a bounded buffer of `bufferSize`; when it is full, new messages
/// are dropped and counted (``droppedCount``) and a `.error(.slowConsumer)` connection
/// event is sent. Iteration ends after ``unsubscribe()``, a completed ``drain(timeout:)``,
/// or when the connection closes. Iterating keeps the subscription alive; when the last
/// reference goes away it unsubscribes. Several tasks may iterate at once; each message
/// goes to one of them.
public final class NatsSubscription: AsyncSequence, Sendable {
    public typealias Element = NatsMessage
    public typealias Failure = Never

    private let handle: SubscriptionHandle
    private let channel: BoundedChannel<NatsMessage>
    /// The subject subscribed to.
    public let subject: String
    /// The queue group, if any.
    public let queue: String?

    init(connection: NatsConnection, subject: String, queue: String?, bufferSize: Int) throws(NatsError) {
        guard bufferSize > 0 else {
            throw NatsError(code: .invalidArgument, operation: "subscribe", detail: "bufferSize must be positive")
        }
        let channel = BoundedChannel<NatsMessage>(capacity: bufferSize)
        let box = SubscriptionBox(channel: channel, handler: nil, core: connection.core, subject: subject)
        self.handle = try SubscriptionHandle(
            connection: connection, subject: subject, queue: queue, box: box,
            maxPendingMessages: Swift.max(bufferSize, 65_536), maxPendingBytes: 64 * 1024 * 1024)
        self.channel = channel
        self.subject = subject
        self.queue = queue
    }

    /// The iterator; it keeps the subscription alive while iterating.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let owner: NatsSubscription

        public mutating func next() async -> NatsMessage? {
            await owner.channel.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> NatsMessage? {
            await owner.channel.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(owner: self) }

    /// Messages dropped so far: by the Swift buffer plus by cnats' pending limits.
    /// The corresponding C function is `natsSubscription_GetDropped`.
    public var droppedCount: Int { handle.box.dropped.load(ordering: .relaxed) + handle.cDropped }

    /// Messages waiting: in the Swift buffer plus in cnats' queue.
    /// The corresponding C function is `natsSubscription_GetPending`.
    public var pending: Int { channel.count + handle.cPending }

    /// Whether the subscription is still active.
    /// The corresponding C function is `natsSubscription_IsValid`.
    public var isActive: Bool { handle.isValid }

    /// Removes interest at once; iteration ends (buffered messages are discarded).
    /// The corresponding C function is `natsSubscription_Unsubscribe`.
    public func unsubscribe() throws(NatsError) {
        try handle.unsubscribe()
        channel.finish(discardBuffered: true)
    }

    /// Removes interest but lets the messages already received be consumed; iteration
    /// ends after the last one. Waits until cnats has delivered everything.
    /// The corresponding C function is `natsSubscription_DrainTimeout`.
    public func drain(timeout: Duration = .seconds(30)) async throws(NatsError) {
        try await handle.drain(timeout: timeout)
    }
}

/// A subscription whose handler runs on the cnats delivery thread (the fast path).
/// Unsubscribes when the last reference goes away.
///
/// ```swift
/// let sub = try nats.subscribe("mesh.agent.7.*.act") { message in mailbox.offer(message) }
/// ```
public final class NatsHandlerSubscription: Sendable {
    private let handle: SubscriptionHandle
    /// The subject subscribed to.
    public let subject: String
    /// The queue group, if any.
    public let queue: String?

    init(
        connection: NatsConnection, subject: String, queue: String?, maxPendingMessages: Int, maxPendingBytes: Int,
        handler: @escaping @Sendable (NatsMessage) -> Void
    ) throws(NatsError) {
        let box = SubscriptionBox(channel: nil, handler: handler, core: connection.core, subject: subject)
        self.handle = try SubscriptionHandle(
            connection: connection, subject: subject, queue: queue, box: box,
            maxPendingMessages: maxPendingMessages, maxPendingBytes: maxPendingBytes)
        self.subject = subject
        self.queue = queue
    }

    /// Messages dropped by cnats because the handler fell behind its pending limits.
    /// The corresponding C function is `natsSubscription_GetDropped`.
    public var droppedCount: Int { handle.cDropped }

    /// Messages queued in cnats, not yet given to the handler.
    /// The corresponding C function is `natsSubscription_GetPending`.
    public var pending: Int { handle.cPending }

    /// Whether the subscription is still active.
    /// The corresponding C function is `natsSubscription_IsValid`.
    public var isActive: Bool { handle.isValid }

    /// Removes interest; the handler may run once more if a delivery is in progress.
    /// The corresponding C function is `natsSubscription_Unsubscribe`.
    public func unsubscribe() throws(NatsError) {
        try handle.unsubscribe()
    }

    /// Removes interest and waits until the handler has seen every message received.
    /// The corresponding C function is `natsSubscription_DrainTimeout`.
    public func drain(timeout: Duration = .seconds(30)) async throws(NatsError) {
        try await handle.drain(timeout: timeout)
    }

    /// Removes interest without waiting: messages already received still reach the handler
    /// (unlike ``unsubscribe()``, which drops them), within `timeout`. Keep this object alive
    /// until ``waitUntilComplete(timeout:)`` returns: releasing it ends the drain early.
    /// The corresponding C function is `natsSubscription_DrainTimeout`.
    public func beginDrain(timeout: Duration = .seconds(30)) throws(NatsError) {
        try handle.beginDrain(timeout: timeout)
    }

    /// Waits until the subscription has completed (after unsubscribe, drain or close):
    /// from then on the handler is never called again.
    public func waitUntilComplete(timeout: Duration) async -> Bool {
        await handle.box.completed.wait(timeout: timeout)
    }
}
