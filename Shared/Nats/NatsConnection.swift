import CNats
public import Logging
import Synchronization

/// Something that happened to a connection, delivered on ``NatsConnection/events``.
public enum NatsConnectionEvent: Sendable, CustomStringConvertible {
    /// The connection to the server was lost; the client is reconnecting.
    case disconnected
    /// The client is connected again (also sent when a connection created with
    /// ``NatsOptions/retryOnFailedConnect`` first connects).
    case reconnected
    /// The connection is closed for good.
    case closed
    /// An asynchronous error, e.g. ``NatsError/Code/slowConsumer`` when a subscription
    /// dropped messages.
    case error(NatsError)

    public var description: String {
        switch self {
        case .disconnected: "disconnected"
        case .reconnected: "reconnected"
        case .closed: "closed"
        case .error(let error): "error(\(error))"
        }
    }
}

/// Counters of a connection (`natsStatistics`).
public struct NatsStatistics: Sendable, Equatable {
    /// Messages received.
    public var inMsgs: UInt64
    /// Messages sent.
    public var outMsgs: UInt64
    /// Payload bytes received.
    public var inBytes: UInt64
    /// Payload bytes sent.
    public var outBytes: UInt64
    /// Successful reconnects.
    public var reconnects: UInt64
}

/// The state shared between a connection and the cnats callback threads: event
/// listeners, the closed signal, the logger. cnats holds one retained reference (the
/// callbacks' closure), released by the closed callback, which is always the last one.
final class ConnectionCore: Sendable {
    let logger: Logger
    let closedSignal = CompletionSignal()
    private let listeners = Mutex<(next: Int, all: [Int: AsyncStream<NatsConnectionEvent>.Continuation])>((0, [:]))
    private let closeObservers = Mutex<[Int: @Sendable () -> Void]>([:])
    private let observerIDs = Atomic<Int>(0)

    init(logger: Logger) {
        self.logger = logger
    }

    func makeEventStream() -> AsyncStream<NatsConnectionEvent> {
        let (stream, continuation) = AsyncStream<NatsConnectionEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
        if closedSignal.isDone {
            continuation.yield(.closed)
            continuation.finish()
            return stream
        }
        let id = listeners.withLock { state -> Int in
            state.next += 1
            state.all[state.next] = continuation
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.listeners.withLock { $0.all.removeValue(forKey: id) }
        }
        return stream
    }

    func emit(_ event: NatsConnectionEvent) {
        let targets = listeners.withLock { Array($0.all.values) }
        for continuation in targets { continuation.yield(event) }
    }

    /// Runs `observer` once when the connection closes (at once if already closed).
    /// Returns an id for `removeCloseObserver`.
    @discardableResult
    func addCloseObserver(_ observer: @escaping @Sendable () -> Void) -> Int {
        let id = observerIDs.add(1, ordering: .relaxed).newValue
        closeObservers.withLock { $0[id] = observer }
        if closedSignal.isDone, let observer = closeObservers.withLock({ $0.removeValue(forKey: id) }) {
            observer()
        }
        return id
    }

    func removeCloseObserver(_ id: Int) {
        _ = closeObservers.withLock { $0.removeValue(forKey: id) }
    }

    func didClose() {
        closedSignal.signal()
        let observers = closeObservers.withLock { state -> [@Sendable () -> Void] in
            defer { state.removeAll() }
            return Array(state.values)
        }
        for observer in observers { observer() }
        emit(.closed)
        let all = listeners.withLock { state -> [AsyncStream<NatsConnectionEvent>.Continuation] in
            defer { state.all.removeAll() }
            return Array(state.all.values)
        }
        for continuation in all { continuation.finish() }
    }
}

// MARK: - C callbacks (no captures: context arrives through `closure`)

private func onDisconnected(_ nc: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    let core = Unmanaged<ConnectionCore>.fromOpaque(closure).takeUnretainedValue()
    // A disconnect on the way to a deliberate close or drain is routine; any other is not.
    if let nc, natsConnection_IsClosed(nc) || natsConnection_IsDraining(nc) {
        core.logger.debug("nats disconnected while closing")
    } else {
        core.logger.warning("nats disconnected")
    }
    core.emit(.disconnected)
}

private func onReconnected(_ nc: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    let core = Unmanaged<ConnectionCore>.fromOpaque(closure).takeUnretainedValue()
    core.logger.info("nats reconnected")
    core.emit(.reconnected)
}

private func onClosed(_ nc: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    let unmanaged = Unmanaged<ConnectionCore>.fromOpaque(closure)
    let core = unmanaged.takeUnretainedValue()
    core.logger.debug("nats connection closed")
    core.didClose()
    unmanaged.release()  // the closed callback is the last one cnats makes for a connection
}

private func onAsyncError(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ status: natsStatus, _ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    let core = Unmanaged<ConnectionCore>.fromOpaque(closure).takeUnretainedValue()
    let subject = sub.flatMap { natsSubscription_GetSubject($0) }.map { String(cString: $0) } ?? "-"
    let error: NatsError
    if status == NATS_SLOW_CONSUMER {
        var dropped: Int64 = 0
        if let sub { _ = natsSubscription_GetDropped(sub, &dropped) }
        error = NatsError(
            code: .slowConsumer, operation: "natsErrHandler", detail: "subscription \(subject) over pending limits",
            status: Int32(status.rawValue))
        core.logger.warning("nats slow consumer", metadata: ["nats.subject": "\(subject)", "nats.dropped": "\(dropped)"])
    } else {
        error = NatsError(status: status, operation: "natsErrHandler")
        core.logger.warning("nats async error", metadata: ["nats.error": "\(error)", "nats.subject": "\(subject)"])
    }
    core.emit(.error(error))
}

/// A connection to NATS: core publish/subscribe, request/reply, and the entry point to
/// JetStream. One instance owns one C `natsConnection`, destroyed when the instance goes
/// away.
///
/// ```swift
/// var options = NatsOptions()
/// options.servers = ["nats://127.0.0.1:4222"]
/// let nats = try await NatsConnection.connect(options, logger: logger)
/// let reply = try await nats.request("mesh.reg.get", payload: bytes, timeout: .seconds(2))
/// ```
///
/// All methods are safe to call from any thread or task.
public final class NatsConnection: @unchecked Sendable {
    // @unchecked: `nc` is an immutable pointer to a cnats connection, which is internally
    // locked and documented thread-safe; all mutable Swift state is behind Mutexes.
    let nc: OpaquePointer
    let core: ConnectionCore
    /// The logger given at connect.
    public let logger: Logger
    private let muxState = Mutex<RequestMux?>(nil)
    /// The link carrying requests and responses, when it could be made.
    let link: CoalescingLink?

    private init(nc: OpaquePointer, core: ConnectionCore, link: CoalescingLink?) {
        self.nc = nc
        self.core = core
        self.logger = core.logger
        self.link = link
    }

    deinit {
        let mux = muxState.withLock { $0 }
        mux?.shutdown()
        natsConnection_Destroy(nc)
    }

    /// Connects to the servers in `options`.
    ///
    /// The connect itself is a short blocking C call bounded by
    /// ``NatsOptions/connectTimeout`` per server.
    /// The corresponding C function is `natsConnection_Connect`.
    /// - Throws: ``NatsError`` with `.notConnected` when no server could be reached.
    public static func connect(_ options: NatsOptions, logger: Logger) async throws(NatsError) -> NatsConnection {
        try NatsLibrary.open()
        var opts: OpaquePointer? = nil
        try natsCall("natsOptions_Create") { natsOptions_Create(&opts) }
        guard let opts else { throw NatsError(code: .other, operation: "natsOptions_Create") }
        defer { natsOptions_Destroy(opts) }
        let arena = CStringArena()
        guard !options.servers.isEmpty else {
            throw NatsError(code: .invalidArgument, operation: "natsOptions_SetServers", detail: "no servers")
        }
        let servers = arena.array(options.servers)
        try natsCall("natsOptions_SetServers") { natsOptions_SetServers(opts, servers, Int32(options.servers.count)) }
        try natsCall("natsOptions_SetName") { natsOptions_SetName(opts, options.name) }
        try natsCall("natsOptions_SetAllowReconnect") { natsOptions_SetAllowReconnect(opts, options.maxReconnect != 0) }
        try natsCall("natsOptions_SetMaxReconnect") { natsOptions_SetMaxReconnect(opts, Int32(clamping: options.maxReconnect)) }
        try natsCall("natsOptions_SetReconnectWait") { natsOptions_SetReconnectWait(opts, options.reconnectWait.milliseconds) }
        try natsCall("natsOptions_SetReconnectJitter") {
            natsOptions_SetReconnectJitter(opts, options.reconnectJitter.milliseconds, options.reconnectJitter.milliseconds)
        }
        try natsCall("natsOptions_SetPingInterval") { natsOptions_SetPingInterval(opts, options.pingInterval.timeoutMilliseconds) }
        try natsCall("natsOptions_SetMaxPingsOut") { natsOptions_SetMaxPingsOut(opts, Int32(clamping: options.maxPingsOut)) }
        try natsCall("natsOptions_SetSendAsap") { natsOptions_SetSendAsap(opts, options.sendAsap) }
        try natsCall("natsOptions_SetTimeout") { natsOptions_SetTimeout(opts, options.connectTimeout.timeoutMilliseconds) }
        try natsCall("natsOptions_SetReconnectBufSize") {
            natsOptions_SetReconnectBufSize(opts, Int32(clamping: options.reconnectBufferSize))
        }
        try natsCall("natsOptions_UseGlobalMessageDelivery") {
            natsOptions_UseGlobalMessageDelivery(opts, options.useGlobalMessageDelivery)
        }
        if options.useGlobalMessageDelivery {
            try natsCall("nats_SetMessageDeliveryPoolSize") { nats_SetMessageDeliveryPoolSize(Int32(clamping: max(1, options.globalDeliveryThreads))) }
        }
        if let user = options.user {
            try natsCall("natsOptions_SetUserInfo") { natsOptions_SetUserInfo(opts, user, options.password) }
        }
        if let token = options.token {
            try natsCall("natsOptions_SetToken") { natsOptions_SetToken(opts, token) }
        }

        let core = ConnectionCore(logger: logger)
        let context = Unmanaged.passRetained(core).toOpaque()
        do {
            try natsCall("natsOptions_SetDisconnectedCB") { natsOptions_SetDisconnectedCB(opts, onDisconnected, context) }
            try natsCall("natsOptions_SetReconnectedCB") { natsOptions_SetReconnectedCB(opts, onReconnected, context) }
            try natsCall("natsOptions_SetClosedCB") { natsOptions_SetClosedCB(opts, onClosed, context) }
            try natsCall("natsOptions_SetErrorHandler") { natsOptions_SetErrorHandler(opts, onAsyncError, context) }
            if options.retryOnFailedConnect {
                try natsCall("natsOptions_SetRetryOnFailedConnect") {
                    natsOptions_SetRetryOnFailedConnect(opts, true, onReconnected, context)
                }
            }
        } catch {
            Unmanaged<ConnectionCore>.fromOpaque(context).release()
            throw error
        }

        var nc: OpaquePointer? = nil
        let status = natsConnection_Connect(&nc, opts)
        withExtendedLifetime(arena) {}
        guard status == NATS_OK || status == NATS_NOT_YET_CONNECTED, let nc else {
            // A failed connect makes no callbacks, so the context is ours to release.
            Unmanaged<ConnectionCore>.fromOpaque(context).release()
            let error = NatsError(status: status, operation: "natsConnection_Connect")
            logger.debug("nats connect failed", metadata: ["nats.error": "\(error)"])
            throw error
        }
        logger.debug("nats connected", metadata: ["nats.name": "\(options.name)"])
        // Last: it reuses `opts` with buffered writes and its own callbacks.
        let link = options.coalescingLink ? CoalescingLink.connect(opts, options: options, core: ConnectionCore(logger: logger)) : nil
        return NatsConnection(nc: nc, core: core, link: link)
    }

    /// Connection events from now on (each access returns a new stream; it buffers the
    /// newest 256 events and ends after `.closed`).
    /// The corresponding C functions are `natsOptions_SetDisconnectedCB`,
    /// `natsOptions_SetReconnectedCB`, `natsOptions_SetClosedCB` and `natsOptions_SetErrorHandler`.
    public var events: AsyncStream<NatsConnectionEvent> { core.makeEventStream() }

    /// Whether the connection is currently connected.
    /// The corresponding C function is `natsConnection_Status`.
    public var isConnected: Bool { natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED }

    /// Whether the connection is closed for good.
    /// The corresponding C function is `natsConnection_IsClosed`.
    public var isClosed: Bool { natsConnection_IsClosed(nc) }

    /// The server's maximum payload size in bytes.
    /// The corresponding C function is `natsConnection_GetMaxPayload`.
    public var maxPayload: Int { Int(natsConnection_GetMaxPayload(nc)) }

    /// Bytes published but not yet sent to the server (0 when closed).
    /// The corresponding C function is `natsConnection_Buffered`.
    public var bufferedBytes: Int { max(0, Int(natsConnection_Buffered(nc))) }

    /// Publishes a message.
    /// - Parameters:
    ///   - subject: a literal subject (no wildcards).
    ///   - payload: the bytes.
    ///   - headers: optional headers.
    ///   - reply: optional reply subject.
    /// - Throws: `.invalidSubject`, `.maxPayload`, `.connectionClosed`.
    /// The corresponding C functions are `natsConnection_Publish`,
    /// `natsConnection_PublishRequest` and (with headers) `natsConnection_PublishMsg`.
    public func publish(_ subject: String, payload: [UInt8], headers: NatsHeaders? = nil, reply: String? = nil) throws(NatsError) {
        try SubjectRules.validatePublish(subject, "natsConnection_Publish")
        if let reply { try SubjectRules.validatePublish(reply, "natsConnection_PublishRequest") }
        try publishUnchecked(subject, payload: payload, headers: headers, reply: reply)
    }

    /// Publish without subject validation (callers validated already).
    func publishUnchecked(_ subject: String, payload: [UInt8], headers: NatsHeaders?, reply: String?) throws(NatsError) {
        if let headers, !headers.isEmpty {
            let msg = try makeCMessage(subject: subject, reply: reply, payload: payload, headers: headers)
            defer { NatsLibrary.destroy(msg) }
            try natsCall("natsConnection_PublishMsg") { natsConnection_PublishMsg(nc, msg) }
            return
        }
        let status = payload.withUnsafeBytes { bytes -> natsStatus in
            if let reply {
                return natsConnection_PublishRequest(nc, subject, reply, bytes.baseAddress, Int32(bytes.count))
            }
            return natsConnection_Publish(nc, subject, bytes.baseAddress, Int32(bytes.count))
        }
        guard status == NATS_OK else {
            throw NatsError(status: status, operation: reply == nil ? "natsConnection_Publish" : "natsConnection_PublishRequest")
        }
    }

    /// Answers a request: publishes to `message.reply`, on the coalescing link
    /// (``NatsOptions/coalescingLink``): at once, or — from a message callback whose
    /// subscription has more requests queued — together with the following replies.
    /// - Throws: `.invalidArgument` when the message has no reply subject.
    /// The corresponding C function is `natsConn_publish` (cnats-internal; cnats has no
    /// `natsMsg_Respond`), or `natsConnection_Publish` without the link.
    public func respond(to message: NatsMessage, payload: [UInt8], headers: NatsHeaders? = nil) throws(NatsError) {
        guard let reply = message.reply, !reply.isEmpty else {
            throw NatsError(code: .invalidArgument, operation: "respond", detail: "message has no reply subject")
        }
        try publishRequestReply(reply, payload: payload, headers: headers, reply: nil)
    }

    /// A request or a response: on the coalescing link when there is one, else like
    /// ``publishUnchecked(_:payload:headers:reply:)``.
    @inline(__always)
    func publishRequestReply(_ subject: String, payload: [UInt8], headers: NatsHeaders?, reply: String?) throws(NatsError) {
        if let link {
            try link.publish(subject, payload: payload, headers: headers, reply: reply)
        } else {
            try publishUnchecked(subject, payload: payload, headers: headers, reply: reply)
        }
    }

    /// Sends a request and waits for the first reply without blocking a thread: all
    /// requests share one wildcard inbox subscription (`_INBOX.<nuid>.*`), each with its
    /// own token, so thousands can be in flight.
    /// - Returns: the reply.
    /// - Throws: `.noResponders` at once when nobody subscribes to `subject`; `.timeout`;
    ///   `.cancelled` when the task is cancelled; `.connectionClosed`.
    /// The corresponding C functions are `natsConnection_Subscribe` (once) and
    /// `natsConnection_PublishRequest` / `natsConnection_PublishMsg` (per request).
    public func request(_ subject: String, payload: [UInt8], headers: NatsHeaders? = nil, timeout: Duration) async throws(NatsError) -> NatsMessage {
        try SubjectRules.validatePublish(subject, "request")
        let mux = try requestMux()
        return try await mux.request(subject, payload: payload, headers: headers, timeout: timeout)
    }

    /// ``request(_:payload:headers:timeout:)`` without a task: `completion` runs once, on
    /// the thread that has the outcome (a cnats delivery thread for a reply or no
    /// responders, the request timer's thread for `.timeout`, the caller's for a failure to
    /// send). It must not block: hand longer work to another thread.
    public func request(
        _ subject: String, payload: [UInt8], headers: NatsHeaders? = nil, timeout: Duration,
        completion: @escaping @Sendable (Result<NatsMessage, NatsError>) -> Void
    ) {
        do throws(NatsError) {
            try SubjectRules.validatePublish(subject, "request")
            try requestMux().request(subject, payload: payload, headers: headers, timeout: timeout, completion: completion)
        } catch {
            completion(.failure(error))
        }
    }

    private func requestMux() throws(NatsError) -> RequestMux {
        if let mux = muxState.withLock({ $0 }) { return mux }
        let result: Result<RequestMux, NatsError> = muxState.withLock { state in
            if let mux = state { return .success(mux) }
            do throws(NatsError) {
                let mux = try RequestMux(connection: self)
                state = mux
                return .success(mux)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Requests currently waiting for a reply.
    public var requestsInFlight: Int { muxState.withLock { $0 }?.inFlight ?? 0 }

    /// Subscribes and returns an `AsyncSequence` of messages with a bounded buffer.
    ///
    /// When the buffer is full, new messages are dropped, counted in
    /// ``NatsSubscription/droppedCount`` and reported once per overflow episode as a
    /// `.error(.slowConsumer)` event. cnats' own pending limits are set to
    /// `max(bufferSize, 65_536)` messages / 64 MiB.
    /// - Parameters:
    ///   - subject: subject, wildcards allowed.
    ///   - queue: optional queue group (messages are split across its members).
    ///   - bufferSize: messages buffered between cnats and the iterating task.
    /// The corresponding C functions are `natsConnection_Subscribe` /
    /// `natsConnection_QueueSubscribe` and `natsSubscription_SetPendingLimits`.
    public func subscribe(_ subject: String, queue: String? = nil, bufferSize: Int = 4096) throws(NatsError) -> NatsSubscription {
        try NatsSubscription(connection: self, subject: subject, queue: queue, bufferSize: bufferSize)
    }

    /// Subscribes with a handler called on the cnats delivery thread for every message:
    /// the fast path, with no `Task` and no buffer hop per message. The handler must not
    /// block for long (it delays every later message of this subscription).
    /// - Parameters:
    ///   - maxPendingMessages: cnats pending limit in messages (beyond it, messages are
    ///     dropped and a `.slowConsumer` event is sent).
    ///   - maxPendingBytes: cnats pending limit in bytes.
    /// The corresponding C functions are `natsConnection_Subscribe` /
    /// `natsConnection_QueueSubscribe` and `natsSubscription_SetPendingLimits`.
    public func subscribe(
        _ subject: String, queue: String? = nil, maxPendingMessages: Int = 65_536, maxPendingBytes: Int = 64 * 1024 * 1024,
        handler: @escaping @Sendable (NatsMessage) -> Void
    ) throws(NatsError) -> NatsHandlerSubscription {
        try NatsHandlerSubscription(
            connection: self, subject: subject, queue: queue, maxPendingMessages: maxPendingMessages,
            maxPendingBytes: maxPendingBytes, handler: handler)
    }

    /// Sends a PING and waits for the PONG, so everything published before has reached
    /// the server. Blocks the calling thread for at most `timeout`.
    /// The corresponding C function is `natsConnection_FlushTimeout`.
    public func flush(timeout: Duration) throws(NatsError) {
        try natsCall("natsConnection_FlushTimeout") { natsConnection_FlushTimeout(nc, timeout.timeoutMilliseconds) }
    }

    /// Drains: stops receiving, lets every subscription finish its buffered messages,
    /// flushes, then closes. Waits (asynchronously) until closed.
    /// - Throws: `.timeout` when the connection did not close within `timeout`.
    /// The corresponding C function is `natsConnection_DrainTimeout`.
    public func drain(timeout: Duration) async throws(NatsError) {
        if !isClosed {
            try natsCall("natsConnection_DrainTimeout") { natsConnection_DrainTimeout(nc, timeout.timeoutMilliseconds) }
        }
        let closed = await core.closedSignal.wait(timeout: timeout + .seconds(1))
        link?.flushAndClose(timeout: .seconds(1))
        guard closed else { throw NatsError(code: .timeout, operation: "natsConnection_DrainTimeout", detail: "not closed in time") }
    }

    /// Closes the connection (idempotent); subscriptions end, waiting requests fail with
    /// `.connectionClosed`.
    /// The corresponding C function is `natsConnection_Close`.
    public func close() {
        natsConnection_Close(nc)
        if let link { natsConnection_Close(link.nc) }
    }

    /// Waits until the connection is closed (e.g. after `close()` or a failed drain).
    /// Returns false when `timeout` passed first.
    public func waitUntilClosed(timeout: Duration) async -> Bool {
        await core.closedSignal.wait(timeout: timeout)
    }

    /// A fresh unique inbox subject (`_INBOX.<nuid>`).
    /// The corresponding C function is `natsInbox_Create`.
    public func newInbox() -> String {
        Self.makeInbox()
    }

    static func makeInbox() -> String {
        _ = try? NatsLibrary.open()
        var inbox: UnsafeMutablePointer<natsInbox>? = nil
        guard natsInbox_Create(&inbox) == NATS_OK, let inbox else {
            return "_INBOX.\(UInt64.random(in: 0...UInt64.max))"
        }
        defer { natsInbox_Destroy(inbox) }
        return String(cString: inbox)
    }

    /// Connection counters (both links together).
    /// The corresponding C functions are `natsConnection_GetStats` and `natsStatistics_GetCounts`.
    public var statistics: NatsStatistics {
        var result = NatsStatistics(inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0, reconnects: 0)
        var stats: OpaquePointer? = nil
        guard natsStatistics_Create(&stats) == NATS_OK, let stats else { return result }
        defer { natsStatistics_Destroy(stats) }
        for handle in [nc, link?.nc].compactMap({ $0 }) where natsConnection_GetStats(handle, stats) == NATS_OK {
            var part = NatsStatistics(inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0, reconnects: 0)
            _ = natsStatistics_GetCounts(stats, &part.inMsgs, &part.inBytes, &part.outMsgs, &part.outBytes, &part.reconnects)
            result.inMsgs += part.inMsgs
            result.inBytes += part.inBytes
            result.outMsgs += part.outMsgs
            result.outBytes += part.outBytes
            result.reconnects += part.reconnects
        }
        return result
    }

    /// A JetStream context on this connection.
    /// - Parameters:
    ///   - domain: the JetStream domain, if any.
    ///   - publishAsyncMaxPending: bound of in-flight asynchronous publishes; a publish
    ///     beyond it waits (up to 200 ms, then `.timeout`).
    /// The corresponding C function is `natsConnection_JetStream`.
    public func jetStream(domain: String? = nil, publishAsyncMaxPending: Int = 4000) throws(NatsError) -> JetStream {
        try JetStream(connection: self, domain: domain, maxPending: publishAsyncMaxPending)
    }
}
