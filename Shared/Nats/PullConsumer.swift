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
/// Fetches run on a dedicated thread, so awaiting one never blocks a cooperative thread.
/// One fetch at a time per consumer object.
public final class PullConsumer: @unchecked Sendable {
    // @unchecked: `sub` is an immutable pointer to a cnats subscription (internally
    // locked); `jetStream` keeps the C context and connection alive.
    let sub: OpaquePointer
    /// The JetStream context.
    public let jetStream: JetStream
    /// The stream name.
    public let stream: String
    /// The durable consumer name.
    public let durable: String

    init(jetStream: JetStream, stream: String, durable: String, filter: String?) throws(NatsError) {
        try SubjectRules.validateName(stream, kind: "stream", "js_PullSubscribe")
        try SubjectRules.validateName(durable, kind: "consumer", "js_PullSubscribe")
        if let filter { try SubjectRules.validateSubscribe(filter, "js_PullSubscribe") }
        var options = jsSubOptions()
        _ = jsSubOptions_Init(&options)
        var sub: OpaquePointer? = nil
        var jsError = jsErrCode(rawValue: 0)
        let status = stream.withCString { streamName in
            durable.withCString { durableName in
                options.Stream = streamName
                // Without a filter, bind to the existing consumer; with one, cnats looks the
                // consumer up and creates it when missing.
                if filter == nil { options.Consumer = durableName }
                return js_PullSubscribe(&sub, jetStream.js, filter, durableName, nil, &options, &jsError)
            }
        }
        guard status == NATS_OK, let sub else { throw NatsError(status: status, operation: "js_PullSubscribe", jsError: jsError) }
        self.sub = sub
        self.jetStream = jetStream
        self.stream = stream
        self.durable = durable
    }

    deinit {
        natsSubscription_Destroy(sub)
    }

    /// Fetches up to `batch` messages, waiting up to `expires` for the first.
    /// - Returns: the messages; `[]` when none arrived in time.
    /// The corresponding C function is `natsSubscription_Fetch`.
    public func fetch(batch: Int, expires: Duration) async throws(NatsError) -> [JetStreamMessage] {
        guard batch > 0 else { throw NatsError(code: .invalidArgument, operation: "natsSubscription_Fetch", detail: "batch must be positive") }
        let result = await BlockingCall.run("nats-fetch") { () -> Result<[JetStreamMessage], NatsError> in
            self.fetchBlocking(batch: batch, expires: expires)
        }
        return try result.get()
    }

    private func fetchBlocking(batch: Int, expires: Duration) -> Result<[JetStreamMessage], NatsError> {
        var list = natsMsgList()
        var jsError = jsErrCode(rawValue: 0)
        let status = natsSubscription_Fetch(&list, sub, Int32(clamping: batch), expires.timeoutMilliseconds, &jsError)
        defer { natsMsgList_Destroy(&list) }
        var messages: [JetStreamMessage] = []
        if let msgs = list.Msgs {
            messages.reserveCapacity(Int(list.Count))
            for index in 0..<Int(list.Count) {
                guard let msg = msgs[index] else { continue }
                msgs[index] = nil  // ownership moves to the JetStreamMessage
                messages.append(JetStreamMessage(msg: msg, consumer: self))
            }
        }
        if status == NATS_OK || (status == NATS_TIMEOUT) { return .success(messages) }
        if !messages.isEmpty { return .success(messages) }
        return .failure(NatsError(status: status, operation: "natsSubscription_Fetch", jsError: jsError))
    }

    /// An endless sequence of messages, fetched `batch` at a time as the consumer asks
    /// for more (the next fetch starts only when the previous batch has been consumed).
    /// Ends when the task is cancelled or after ``unsubscribe()``; throws on fetch errors.
    /// Cancellation takes effect after the fetch in progress (at most `expires`).
    /// The corresponding C function is `natsSubscription_Fetch`.
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

    /// Stops pulling (the durable consumer stays on the server).
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
        natsMsg_Destroy(msg)
    }

    public var description: String {
        "JetStreamMessage(subject: \(subject), bytes: \(payload.count), seq: \(metadata?.streamSequence ?? 0))"
    }

    private func locked(_ op: StaticString, _ body: (OpaquePointer) -> natsStatus) throws(NatsError) {
        lock.lock()
        let status = body(msg)
        lock.unlock()
        guard status == NATS_OK else { throw NatsError(status: status, operation: op) }
    }

    /// Acknowledges (fire and forget).
    /// The corresponding C function is `natsMsg_Ack`.
    public func ack() throws(NatsError) {
        try locked("natsMsg_Ack") { natsMsg_Ack($0, nil) }
    }

    /// Acknowledges and waits for the server to confirm it.
    /// The corresponding C function is `natsMsg_AckSync`.
    public func ackSync() async throws(NatsError) {
        let result = await BlockingCall.run("nats-ack") { () -> Result<Void, NatsError> in
            var jsError = jsErrCode(rawValue: 0)
            self.lock.lock()
            let status = natsMsg_AckSync(self.msg, nil, &jsError)
            self.lock.unlock()
            return status == NATS_OK ? .success(()) : .failure(NatsError(status: status, operation: "natsMsg_AckSync", jsError: jsError))
        }
        try result.get()
    }

    /// Negative acknowledgement: redeliver, after `delay` when given.
    /// The corresponding C functions are `natsMsg_Nak` and `natsMsg_NakWithDelay`.
    public func nak(delay: Duration? = nil) throws(NatsError) {
        if let delay {
            try locked("natsMsg_NakWithDelay") { natsMsg_NakWithDelay($0, delay.milliseconds, nil) }
        } else {
            try locked("natsMsg_Nak") { natsMsg_Nak($0, nil) }
        }
    }

    /// Work in progress: resets the redelivery timer (may be sent many times).
    /// The corresponding C function is `natsMsg_InProgress`.
    public func inProgress() throws(NatsError) {
        try locked("natsMsg_InProgress") { natsMsg_InProgress($0, nil) }
    }

    /// Terminates: never redeliver this message.
    /// The corresponding C function is `natsMsg_Term`.
    public func term() throws(NatsError) {
        try locked("natsMsg_Term") { natsMsg_Term($0, nil) }
    }
}
