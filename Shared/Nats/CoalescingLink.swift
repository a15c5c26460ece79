import CNats
import Glibc
import Logging

/// A connection's second link to the same servers, whose writes are coalesced under load.
/// It carries requests with their reply subscription (``RequestMux``), responses
/// (``NatsConnection/respond(to:payload:headers:)``) and batch acknowledgements
/// (``JetStreamMessage/ack(_:)``).
///
/// With SendAsap (the main link), every publish is its own `send` system call: a third of a
/// busy responder's or requester's CPU on loopback. This link has no SendAsap and decides
/// per publish (cnats' `natsConn_publish` with `directFlush`):
/// - the publish flushes at once, with whatever the link buffered before it, unless
/// - it is made from a message callback whose subscription has more messages queued behind
///   the one being handled (``DeliveryHint``), or it is not the last acknowledgement of a
///   batch: then it stays buffered, for the next publish on this link (typically the answer
///   to the next queued message) or, at the latest, cnats' flusher thread (about 1 ms).
///
/// So a lone request or reply leaves at once, and a burst of N replies costs one `send`.
/// Ordering holds among the link's own publishes; a request or reply is not ordered with
/// publishes made on the main link.
///
/// Not created when the loaded cnats lacks `natsConn_publish` (see
/// `meshnats_find_internal_publish`) or ``NatsOptions/coalescingLink`` is off; the main
/// link then carries everything, as plain cnats does.
final class CoalescingLink: @unchecked Sendable {
    // @unchecked: `nc` is an immutable pointer to a cnats connection (internally locked);
    // `core` is Sendable.
    let nc: OpaquePointer
    let core: ConnectionCore

    /// cnats' internal publish, when the loaded library has it.
    static let internalPublish: meshnats_publish_fn? = meshnats_find_internal_publish()

    private init(nc: OpaquePointer, core: ConnectionCore) {
        self.nc = nc
        self.core = core
    }

    deinit {
        natsConnection_Destroy(nc)
    }

    /// Connects the link with the main link's `opts` (servers, auth, reconnect policy),
    /// switched to buffered writes; `nil` when the library cannot coalesce or the link
    /// cannot connect (the main link then carries request/reply).
    /// The corresponding C function is `natsConnection_Connect`.
    static func connect(_ opts: OpaquePointer, options: NatsOptions, core: ConnectionCore) -> CoalescingLink? {
        guard Self.internalPublish != nil else { return nil }
        let context = Unmanaged.passRetained(core).toOpaque()
        var configured = natsOptions_SetSendAsap(opts, false) == NATS_OK
            && natsOptions_SetName(opts, options.name + ".link") == NATS_OK
            && natsOptions_SetDisconnectedCB(opts, nil, nil) == NATS_OK
            && natsOptions_SetReconnectedCB(opts, nil, nil) == NATS_OK
            && natsOptions_SetClosedCB(opts, linkOnClosed, context) == NATS_OK
            && natsOptions_SetErrorHandler(opts, nil, nil) == NATS_OK
        if configured && options.retryOnFailedConnect {
            configured = natsOptions_SetRetryOnFailedConnect(opts, true, meshnats_ignore_connected, nil) == NATS_OK
        }
        var nc: OpaquePointer? = nil
        let status = configured ? natsConnection_Connect(&nc, opts) : NATS_ERR
        guard status == NATS_OK || status == NATS_NOT_YET_CONNECTED, let nc else {
            Unmanaged<ConnectionCore>.fromOpaque(context).release()  // no connection, no callbacks
            core.logger.debug("nats coalescing link not connected; the main link carries request/reply", metadata: ["nats.status": "\(status.rawValue)"])
            return nil
        }
        return CoalescingLink(nc: nc, core: core)
    }

    /// Publishes, flushing at once unless ``DeliveryHint/deferring`` (see the type's doc).
    /// The corresponding C function is `natsConn_publish` (cnats-internal).
    func publish(_ subject: String, payload: [UInt8], headers: NatsHeaders?, reply: String?) throws(NatsError) {
        let msg = try makeCMessage(subject: subject, reply: reply, payload: payload, headers: headers?.isEmpty == false ? headers : nil)
        defer { NatsLibrary.destroy(msg) }
        try natsCall("natsConn_publish") { Self.internalPublish!(nc, msg, nil, !DeliveryHint.deferring) }
    }

    /// Publishes a short text body (an acknowledgement) to `subject`, flushing only when
    /// `flush` (the last of a batch).
    /// The corresponding C function is `natsConn_publish` (cnats-internal).
    func publish(_ subject: UnsafePointer<CChar>, text: String, flush: Bool) -> natsStatus {
        var msg: OpaquePointer? = nil
        let created = text.withCString { natsMsg_Create(&msg, subject, nil, $0, Int32(strlen($0))) }
        guard created == NATS_OK, let msg else { return created }
        defer { NatsLibrary.destroy(msg) }
        return Self.internalPublish!(nc, msg, nil, flush)
    }

    /// Sends what is buffered (waiting up to `timeout` for the server), then closes.
    /// The corresponding C functions are `natsConnection_FlushTimeout` and `natsConnection_Close`.
    func flushAndClose(timeout: Duration) {
        if !natsConnection_IsClosed(nc) { _ = natsConnection_FlushTimeout(nc, timeout.timeoutMilliseconds) }
        natsConnection_Close(nc)
    }
}

private func linkOnClosed(_ nc: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    let unmanaged = Unmanaged<ConnectionCore>.fromOpaque(closure)
    unmanaged.takeUnretainedValue().didClose()
    unmanaged.release()  // the closed callback is the last one cnats makes for a connection
}

/// What the message callback running on this thread knows about its subscription: set by
/// the delivery trampolines around each handler, read by ``CoalescingLink/publish(_:payload:headers:reply:)``.
enum DeliveryHint {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether this thread is inside a message callback whose subscription has more
    /// messages queued (so another callback, and likely another publish, follows at once).
    static var deferring: Bool { pthread_getspecific(key) != nil }

    /// Runs `body` (a message handler) with ``deferring`` set from `sub`'s queue.
    /// The corresponding C function is `natsSubscription_GetPending`.
    @inline(__always)
    static func delivering(_ sub: OpaquePointer?, _ body: () -> Void) {
        guard CoalescingLink.internalPublish != nil else { return body() }
        var queued: Int32 = 0
        let more = natsSubscription_GetPending(sub, &queued, nil) == NATS_OK && queued > 0
        if more { pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1)) }
        body()
        if more { pthread_setspecific(key, nil) }
    }
}
