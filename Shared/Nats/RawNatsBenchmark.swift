import CNats
import Foundation

/// The result of a raw cnats benchmark run.
public struct RawBenchResult: Sendable {
    /// Operations completed.
    public var count: Int
    /// Wall time from the first send to the last completion.
    public var elapsed: Duration
    /// One latency sample per operation, in nanoseconds (request → reply, or publish →
    /// delivery), in completion order.
    public var latenciesNanos: [UInt64]
}

/// Reference benchmarks written against plain cnats — C callbacks, raw pointers, no
/// `NatsConnection`, no Swift buffers — so a run can compare the Swift wrapper with the
/// C client's own limits on the same machine at the same moment (use release builds).
public enum RawNatsBenchmark {
    /// Request/reply: a responder that is a C function (`meshnats_bench_echo` in the
    /// shim, on a SendAsap connection) and one requester connection keeping `inFlight`
    /// requests outstanding: each reply, received by a C callback on a wildcard inbox
    /// subscription, sends the next request (pipelined `natsConnection_PublishRequest`).
    /// - Parameter plainDestroy: free messages with cnats' own `natsMsg_Destroy` (through
    ///   its garbage-collector thread), as a plain cnats program does. By default they are
    ///   freed at once, as the mesh frees them (``NatsLibrary/destroy(_:)``): the best cnats
    ///   does on this machine, the conservative reference for mesh ÷ raw ratios.
    /// - Parameter rate: open loop instead: request `k` is sent at `k ÷ rate` seconds from
    ///   the start whatever the replies (the calling thread sleeps until each instant), and
    ///   its latency counts from that instant — as the mesh's constant-rate profiles measure;
    ///   `inFlight` is then ignored.
    /// - Returns: `count` operations with their round-trip latencies.
    public static func requestReply(
        url: String, payloadSize: Int, count: Int, inFlight: Int, rate: Int? = nil, plainDestroy: Bool = false
    ) throws(NatsError) -> RawBenchResult {
        guard count > 0, inFlight > 0, payloadSize >= 0, (rate ?? 1) > 0 else {
            throw NatsError(code: .invalidArgument, operation: "RawNatsBenchmark.requestReply", detail: "count, inFlight and rate must be positive")
        }
        try NatsLibrary.open()
        let responder = try rawConnect(url, name: "bench-responder")
        defer { natsConnection_Destroy(responder) }
        let requester = try rawConnect(url, name: "bench-requester")
        defer { natsConnection_Destroy(requester) }

        let subject = "bench.rr.\(UInt32.random(in: 0...UInt32.max))"
        var service: OpaquePointer? = nil
        let freeNow = !plainDestroy && NatsLibrary.freesOnCallingThread
        try natsCall("natsConnection_Subscribe") {
            natsConnection_Subscribe(&service, responder, subject, meshnats_bench_echo, meshnats_token_to_ptr(freeNow ? 1 : 0))
        }
        defer { natsSubscription_Destroy(service) }
        _ = natsSubscription_SetPendingLimits(service, -1, -1)
        try natsCall("natsConnection_Flush") { natsConnection_Flush(responder) }

        let context = RequestReplyContext(nc: requester, subject: subject, payloadSize: payloadSize, count: count, freeNow: freeNow, openLoop: rate != nil)
        let closure = Unmanaged.passRetained(context).toOpaque()
        var inbox: OpaquePointer? = nil
        let status = natsConnection_Subscribe(&inbox, requester, context.prefix + "*", rawReplyHandler, closure)
        guard status == NATS_OK else {
            Unmanaged<RequestReplyContext>.fromOpaque(closure).release()
            throw NatsError(status: status, operation: "natsConnection_Subscribe")
        }
        _ = natsSubscription_SetPendingLimits(inbox, -1, -1)
        if natsSubscription_SetOnCompleteCB(inbox, rawComplete, closure) != NATS_OK {
            Unmanaged<RequestReplyContext>.fromOpaque(closure).release()
        }
        defer { natsSubscription_Destroy(inbox) }
        try natsCall("natsConnection_Flush") { natsConnection_Flush(requester) }

        let started = DispatchTime.now().uptimeNanoseconds
        if let rate {
            for index in 0..<count {
                let intended = started + UInt64(index) * 1_000_000_000 / UInt64(rate)
                sleep(untilUptime: intended)
                context.sendNext(intendedAt: intended)
            }
        } else {
            for _ in 0..<min(inFlight, count) { context.sendNext() }
        }
        let finished = context.done.wait(timeout: .now() + .seconds(60 + count / 1_000))
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        _ = natsSubscription_Unsubscribe(inbox)
        guard finished == .success else {
            throw NatsError(code: .timeout, operation: "RawNatsBenchmark.requestReply", detail: "\(context.completedCount) of \(count) replies")
        }
        return RawBenchResult(count: count, elapsed: .nanoseconds(Int64(elapsed)), latenciesNanos: context.latencies())
    }

    /// Publish/subscribe: one publisher connection publishing `count` messages as fast as
    /// `natsConnection_Publish` allows, one subscriber connection counting them in a C
    /// callback (pending limits off, so nothing is dropped). Latency is publish →
    /// delivery, from a timestamp in the first 8 payload bytes (when `payloadSize >= 8`).
    public static func publishSubscribe(url: String, payloadSize: Int, count: Int) throws(NatsError) -> RawBenchResult {
        guard count > 0, payloadSize >= 0 else {
            throw NatsError(code: .invalidArgument, operation: "RawNatsBenchmark.publishSubscribe", detail: "count must be positive")
        }
        try NatsLibrary.open()
        let subscriber = try rawConnect(url, name: "bench-subscriber")
        defer { natsConnection_Destroy(subscriber) }
        let publisher = try rawConnect(url, name: "bench-publisher", sendAsap: false)
        defer { natsConnection_Destroy(publisher) }

        let subject = "bench.ps.\(UInt32.random(in: 0...UInt32.max))"
        let context = PubSubContext(count: count, timestamps: payloadSize >= 8)
        let closure = Unmanaged.passRetained(context).toOpaque()
        var sub: OpaquePointer? = nil
        let status = natsConnection_Subscribe(&sub, subscriber, subject, rawPubSubHandler, closure)
        guard status == NATS_OK else {
            Unmanaged<PubSubContext>.fromOpaque(closure).release()
            throw NatsError(status: status, operation: "natsConnection_Subscribe")
        }
        _ = natsSubscription_SetPendingLimits(sub, -1, -1)
        if natsSubscription_SetOnCompleteCB(sub, rawPubSubComplete, closure) != NATS_OK {
            Unmanaged<PubSubContext>.fromOpaque(closure).release()
        }
        defer { natsSubscription_Destroy(sub) }
        try natsCall("natsConnection_Flush") { natsConnection_Flush(subscriber) }

        var payload = [UInt8](repeating: 0x61, count: payloadSize)
        let started = DispatchTime.now().uptimeNanoseconds
        let publishStatus = payload.withUnsafeMutableBytes { bytes -> natsStatus in
            for _ in 0..<count {
                if payloadSize >= 8 { bytes.storeBytes(of: DispatchTime.now().uptimeNanoseconds, as: UInt64.self) }
                let status = natsConnection_Publish(publisher, subject, bytes.baseAddress, Int32(payloadSize))
                guard status == NATS_OK else { return status }
            }
            return NATS_OK
        }
        guard publishStatus == NATS_OK else { throw NatsError(status: publishStatus, operation: "natsConnection_Publish") }
        try natsCall("natsConnection_Flush") { natsConnection_Flush(publisher) }
        let finished = context.done.wait(timeout: .now() + .seconds(60 + count / 10_000))
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        _ = natsSubscription_Unsubscribe(sub)
        guard finished == .success else {
            throw NatsError(code: .timeout, operation: "RawNatsBenchmark.publishSubscribe", detail: "\(context.received) of \(count) messages")
        }
        return RawBenchResult(count: count, elapsed: .nanoseconds(Int64(elapsed)), latenciesNanos: context.latencies())
    }

    /// Sleeps until `uptime` (`DispatchTime` nanoseconds); returns at once when less than
    /// 20 µs remain.
    private static func sleep(untilUptime uptime: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard uptime > now + 20_000 else { return }
        let remaining = uptime - now
        var request = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
        var rest = timespec()
        while nanosleep(&request, &rest) == -1 && errno == EINTR { request = rest }
    }

    private static func rawConnect(_ url: String, name: String, sendAsap: Bool = true) throws(NatsError) -> OpaquePointer {
        var opts: OpaquePointer? = nil
        try natsCall("natsOptions_Create") { natsOptions_Create(&opts) }
        defer { natsOptions_Destroy(opts) }
        try natsCall("natsOptions_SetURL") { natsOptions_SetURL(opts, url) }
        try natsCall("natsOptions_SetName") { natsOptions_SetName(opts, name) }
        try natsCall("natsOptions_SetSendAsap") { natsOptions_SetSendAsap(opts, sendAsap) }
        var nc: OpaquePointer? = nil
        try natsCall("natsConnection_Connect") { natsConnection_Connect(&nc, opts) }
        guard let nc else { throw NatsError(code: .notConnected, operation: "natsConnection_Connect") }
        return nc
    }
}

/// State of a request/reply run: preallocated send times and latencies, a token counter.
private final class RequestReplyContext: @unchecked Sendable {
    // @unchecked: `next`/`completed` change under `lock`; each slot of `sentAt` is written
    // before its request is published and read after its reply arrives.
    let nc: OpaquePointer
    let subject: String
    let prefix: String
    let prefixLength: Int
    let payload: [UInt8]
    let count: Int
    let sentAt: UnsafeMutablePointer<UInt64>
    let latencySamples: UnsafeMutablePointer<UInt64>
    let lock = NSLock()
    var next = 0
    var completed = 0
    let done = DispatchSemaphore(value: 0)
    /// Free replies with `NatsLibrary.destroy` (else `natsMsg_Destroy`).
    let freeNow: Bool
    /// Requests are sent on a schedule, not from the previous reply.
    let openLoop: Bool

    init(nc: OpaquePointer, subject: String, payloadSize: Int, count: Int, freeNow: Bool, openLoop: Bool) {
        self.nc = nc
        self.freeNow = freeNow
        self.openLoop = openLoop
        self.subject = subject
        self.prefix = NatsConnection.makeInbox() + "."
        self.prefixLength = prefix.utf8.count
        self.payload = [UInt8](repeating: 0x61, count: payloadSize)
        self.count = count
        sentAt = .allocate(capacity: count)
        latencySamples = .allocate(capacity: count)
    }

    deinit {
        sentAt.deallocate()
        latencySamples.deallocate()
    }

    var completedCount: Int { lock.withLock { completed } }

    /// Sends the next request; its latency counts from `intendedAt` (default: now).
    func sendNext(intendedAt: UInt64? = nil) {
        let token: Int? = lock.withLock {
            guard next < count else { return nil }
            defer { next += 1 }
            return next
        }
        guard let token else { return }
        let reply = prefix + String(token)
        sentAt[token] = intendedAt ?? DispatchTime.now().uptimeNanoseconds
        payload.withUnsafeBytes { bytes in
            _ = natsConnection_PublishRequest(nc, subject, reply, bytes.baseAddress, Int32(bytes.count))
        }
    }

    func received(token: Int) {
        let latency = DispatchTime.now().uptimeNanoseconds &- sentAt[token]
        let finished = lock.withLock { () -> Bool in
            latencySamples[completed] = latency
            completed += 1
            return completed == count
        }
        if finished { done.signal() } else if !openLoop { sendNext() }
    }

    func latencies() -> [UInt64] {
        lock.withLock { Array(UnsafeBufferPointer(start: latencySamples, count: completed)) }
    }
}

private func rawReplyHandler(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let msg else { return }
    guard let closure else { return natsMsg_Destroy(msg) }
    let context = Unmanaged<RequestReplyContext>.fromOpaque(closure).takeUnretainedValue()
    defer { if context.freeNow { NatsLibrary.destroy(msg) } else { natsMsg_Destroy(msg) } }
    guard let subject = natsMsg_GetSubject(msg) else { return }
    var token = 0
    var cursor = subject + context.prefixLength
    while cursor.pointee != 0 {
        token = token &* 10 &+ Int(UInt8(bitPattern: cursor.pointee) &- 48)
        cursor += 1
    }
    guard token >= 0 && token < context.count else { return }
    context.received(token: token)
}

private func rawComplete(_ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    Unmanaged<RequestReplyContext>.fromOpaque(closure).release()
}

/// State of a publish/subscribe run.
private final class PubSubContext: @unchecked Sendable {
    // @unchecked: written only by the subscription's single delivery thread, read after
    // `done` is signalled (or under `lock` for progress).
    let count: Int
    let timestamps: Bool
    let samples: UnsafeMutablePointer<UInt64>
    let lock = NSLock()
    var receivedCount = 0
    let done = DispatchSemaphore(value: 0)

    init(count: Int, timestamps: Bool) {
        self.count = count
        self.timestamps = timestamps
        samples = .allocate(capacity: count)
    }

    deinit { samples.deallocate() }

    var received: Int { lock.withLock { receivedCount } }

    func latencies() -> [UInt64] {
        lock.withLock { timestamps ? Array(UnsafeBufferPointer(start: samples, count: receivedCount)) : [] }
    }
}

private func rawPubSubHandler(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let msg else { return }
    defer { NatsLibrary.destroy(msg) }
    guard let closure else { return }
    let context = Unmanaged<PubSubContext>.fromOpaque(closure).takeUnretainedValue()
    var latency: UInt64 = 0
    if context.timestamps, natsMsg_GetDataLength(msg) >= 8, let data = natsMsg_GetData(msg) {
        latency = DispatchTime.now().uptimeNanoseconds &- UnsafeRawPointer(data).loadUnaligned(as: UInt64.self)
    }
    context.lock.lock()
    let index = context.receivedCount
    if index < context.count {
        context.samples[index] = latency
        context.receivedCount = index + 1
    }
    let finished = context.receivedCount == context.count && index < context.count
    context.lock.unlock()
    if finished { context.done.signal() }
}

private func rawPubSubComplete(_ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    Unmanaged<PubSubContext>.fromOpaque(closure).release()
}
