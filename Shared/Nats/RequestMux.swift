import CNats
import Foundation
import Synchronization

/// Request/reply multiplexer: one wildcard inbox subscription `_INBOX.<nuid>.*` for all
/// requests of a connection, a numeric token per request, a map from token to the
/// waiting continuation or callback, and one timer thread that fails requests at their
/// deadline. Nothing blocks a cooperative thread, and in-flight requests cost one map entry each.
final class RequestMux: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `condition`; `sub` is written once in
    // init and then only read. cnats holds one retained reference (the subscription's
    // closure), released by the subscription's on-complete callback.
    private unowned let connection: NatsConnection
    let prefix: String
    let prefixLength: Int
    private var sub: OpaquePointer?

    private let condition = NSCondition()
    /// Who waits for a reply: an async caller, or a callback run on the thread that has the reply.
    fileprivate enum Waiter {
        case continuation(CheckedContinuation<Result<NatsMessage, NatsError>, Never>)
        case callback(@Sendable (Result<NatsMessage, NatsError>) -> Void)

        func resume(returning result: Result<NatsMessage, NatsError>) {
            switch self {
            case .continuation(let continuation): continuation.resume(returning: result)
            case .callback(let callback): callback(result)
            }
        }
    }
    private var waiters: [UInt64: Waiter] = [:]
    private var cancelledEarly: Set<UInt64> = []
    private var heap = DeadlineHeap()
    private var closed = false
    private let tokens = Atomic<UInt64>(0)

    init(connection: NatsConnection) throws(NatsError) {
        self.connection = connection
        self.prefix = NatsConnection.makeInbox() + "."
        self.prefixLength = prefix.utf8.count
        let context = Unmanaged.passRetained(self).toOpaque()
        var sub: OpaquePointer? = nil
        // On the link that sends the requests: the server answers "no responders" only on
        // the connection that subscribed to the reply subject.
        let status = natsConnection_Subscribe(&sub, connection.link?.nc ?? connection.nc, prefix + "*", muxOnMessage, context)
        guard status == NATS_OK, let sub else {
            Unmanaged<RequestMux>.fromOpaque(context).release()
            throw NatsError(status: status, operation: "natsConnection_Subscribe")
        }
        // Replies are bounded by the requests in flight, so cnats must never drop one.
        _ = natsSubscription_SetPendingLimits(sub, -1, -1)
        if natsSubscription_SetOnCompleteCB(sub, muxOnComplete, context) != NATS_OK {
            // Closed already (connection closing): the delivery thread may still hold the
            // context, so it is deliberately not released (a few bytes, only in this race).
        }
        self.sub = sub
        for core in [connection.core, connection.link?.core].compactMap({ $0 }) {
            core.addCloseObserver { [weak self] in
                self?.shutdown(error: NatsError(code: .connectionClosed, operation: "request", detail: "connection closed"))
            }
        }
        let thread = Thread { [self] in timerLoop() }
        thread.name = "nats-request-timer"
        thread.stackSize = 256 * 1024
        thread.start()
    }

    var inFlight: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiters.count
    }

    /// Fails every waiting request, stops the timer thread and removes the subscription.
    func shutdown(error: NatsError = NatsError(code: .connectionClosed, operation: "request", detail: "connection closed")) {
        condition.lock()
        if closed {
            condition.unlock()
            return
        }
        closed = true
        let pending = Array(waiters.values)
        waiters.removeAll()
        cancelledEarly.removeAll()
        heap.removeAll()
        let sub = self.sub
        self.sub = nil
        condition.broadcast()
        condition.unlock()
        for waiter in pending { waiter.resume(returning: .failure(error)) }
        if let sub {
            _ = natsSubscription_Unsubscribe(sub)
            natsSubscription_Destroy(sub)
        }
    }

    func request(_ subject: String, payload: [UInt8], headers: NatsHeaders?, timeout: Duration) async throws(NatsError) -> NatsMessage {
        let token = tokens.add(1, ordering: .relaxed).newValue
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                send(subject, payload: payload, headers: headers, timeout: timeout, token: token, waiter: .continuation(continuation))
            }
        } onCancel: {
            condition.lock()
            if let waiter = waiters.removeValue(forKey: token) {
                condition.unlock()
                waiter.resume(returning: .failure(NatsError(code: .cancelled, operation: "request")))
            } else {
                cancelledEarly.insert(token)
                condition.unlock()
            }
        }
        if Task.isCancelled {
            // The cancellation handler may have left a marker after the reply arrived.
            clearCancelMarker(token)
        }
        return try result.get()
    }

    /// Sends a request; `completion` runs once, with the reply or the failure, on the
    /// thread that has it: a cnats delivery thread (reply, no responders), the timer
    /// thread (timeout), or the caller's (closed connection, failed publish).
    func request(
        _ subject: String, payload: [UInt8], headers: NatsHeaders?, timeout: Duration,
        completion: @escaping @Sendable (Result<NatsMessage, NatsError>) -> Void
    ) {
        let token = tokens.add(1, ordering: .relaxed).newValue
        send(subject, payload: payload, headers: headers, timeout: timeout, token: token, waiter: .callback(completion))
    }

    private func send(_ subject: String, payload: [UInt8], headers: NatsHeaders?, timeout: Duration, token: UInt64, waiter: Waiter) {
        let reply = prefix + String(token)
        let deadline = DispatchTime.now().uptimeNanoseconds &+ UInt64(max(1, timeout.nanoseconds))
        condition.lock()
        if closed {
            condition.unlock()
            waiter.resume(returning: .failure(NatsError(code: .connectionClosed, operation: "request")))
            return
        }
        if cancelledEarly.remove(token) != nil {
            condition.unlock()
            waiter.resume(returning: .failure(NatsError(code: .cancelled, operation: "request")))
            return
        }
        waiters[token] = waiter
        let newEarliest = heap.push(deadline: deadline, token: token)
        if heap.count > 2 * waiters.count + 4096 { heap.compact(keeping: waiters) }
        if newEarliest { condition.signal() }
        condition.unlock()
        do throws(NatsError) {
            try connection.publishRequestReply(subject, payload: payload, headers: headers, reply: reply)
        } catch {
            take(token)?.resume(returning: .failure(error))
        }
    }

    private func clearCancelMarker(_ token: UInt64) {
        condition.lock()
        cancelledEarly.remove(token)
        condition.unlock()
    }

    fileprivate func take(_ token: UInt64) -> Waiter? {
        condition.lock()
        defer { condition.unlock() }
        return waiters.removeValue(forKey: token)
    }

    private func timerLoop() {
        condition.lock()
        while !closed {
            guard let earliest = heap.peek else {
                condition.wait()
                continue
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if earliest.deadline > now {
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(earliest.deadline - now) / 1e9))
                continue
            }
            var expired: [Waiter] = []
            while let top = heap.peek, top.deadline <= now {
                heap.pop()
                if let waiter = waiters.removeValue(forKey: top.token) { expired.append(waiter) }
            }
            if !expired.isEmpty {
                condition.unlock()
                let error = NatsError(code: .timeout, operation: "request", detail: "no reply in time")
                for waiter in expired { waiter.resume(returning: .failure(error)) }
                condition.lock()
            }
        }
        condition.unlock()
    }
}

private func muxOnMessage(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let msg else { return }
    defer { NatsLibrary.destroy(msg) }
    guard let closure, let subject = natsMsg_GetSubject(msg) else { return }
    let mux = Unmanaged<RequestMux>.fromOpaque(closure).takeUnretainedValue()
    // Parse the decimal token after the prefix.
    var token: UInt64 = 0
    var cursor = subject + mux.prefixLength
    var digits = 0
    while cursor.pointee != 0 {
        let byte = UInt8(bitPattern: cursor.pointee)
        guard byte >= 48 && byte <= 57 else { return }
        token = token &* 10 &+ UInt64(byte - 48)
        cursor += 1
        digits += 1
    }
    guard digits > 0, let waiter = mux.take(token) else { return }
    let result: Result<NatsMessage, NatsError> =
        natsMsg_IsNoResponders(msg)
        ? .failure(NatsError(code: .noResponders, operation: "request", detail: "no responders")) : .success(NatsMessage(cMessage: msg))
    // A callback sending the next request from here coalesces it with the ones queued behind.
    DeliveryHint.delivering(sub) { waiter.resume(returning: result) }
}

private func muxOnComplete(_ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    Unmanaged<RequestMux>.fromOpaque(closure).release()
}

/// A binary min-heap of (deadline, token) with lazy deletion.
struct DeadlineHeap {
    private var items: [(deadline: UInt64, token: UInt64)] = []

    var count: Int { items.count }
    var peek: (deadline: UInt64, token: UInt64)? { items.first }

    mutating func removeAll() { items.removeAll() }

    /// Adds an entry; returns true when it became the earliest.
    mutating func push(deadline: UInt64, token: UInt64) -> Bool {
        items.append((deadline, token))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if items[parent].deadline <= items[child].deadline { break }
            items.swapAt(parent, child)
            child = parent
        }
        return child == 0
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        siftDown(from: 0)
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        let count = items.count
        while true {
            let left = 2 * parent + 1
            if left >= count { return }
            var smallest = left
            let right = left + 1
            if right < count && items[right].deadline < items[left].deadline { smallest = right }
            if items[parent].deadline <= items[smallest].deadline { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }

    /// Drops entries whose token is no longer waiting, then restores heap order.
    mutating func compact<V>(keeping live: [UInt64: V]) {
        items.removeAll { live[$0.token] == nil }
        var index = items.count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index)
        }
    }
}
