import CNats
public import Foundation
import Logging
import Synchronization

/// A JetStream stream's configuration (the fields the mesh uses).
///
/// ```swift
/// var config = StreamConfig(name: "MESH_TASKS", subjects: ["mesh.task.>"])
/// config.retention = .workQueue
/// config.duplicateWindow = .seconds(120)
/// ```
public struct StreamConfig: Sendable, Equatable {
    /// When messages are removed.
    public enum Retention: Sendable, Equatable {
        /// Kept until a limit (age, count, bytes) is reached.
        case limits
        /// Removed once acknowledged by the (single) consumer of a subject.
        case workQueue
        /// Removed once every consumer with interest acknowledged it.
        case interest
    }
    /// Where messages are stored.
    public enum Storage: Sendable, Equatable { case file, memory }
    /// What happens at a limit.
    public enum Discard: Sendable, Equatable {
        /// Drop the oldest messages.
        case old
        /// Refuse new messages.
        case new
    }

    /// Stream name (no `.`, `*`, `>`, whitespace).
    public var name: String
    /// Subjects stored (wildcards allowed).
    public var subjects: [String]
    /// Retention policy. Default `.limits`.
    public var retention: Retention = .limits
    /// Storage. Default `.file`.
    public var storage: Storage = .file
    /// Replicas (1 on a single server). Default 1.
    public var replicas: Int = 1
    /// Maximum message age; nil = unlimited.
    public var maxAge: Duration?
    /// Maximum messages; nil = unlimited.
    public var maxMsgs: Int64?
    /// Maximum bytes; nil = unlimited.
    public var maxBytes: Int64?
    /// Maximum size of one message; nil = server limit.
    public var maxMsgSize: Int32?
    /// Maximum messages per subject; nil = unlimited.
    public var maxMsgsPerSubject: Int64?
    /// Window in which a repeated `Nats-Msg-Id` is a duplicate; nil = server default (2 min).
    public var duplicateWindow: Duration?
    /// Discard policy. Default `.old`.
    public var discard: Discard = .old
    /// Allow direct get (`$JS.API.DIRECT.GET`). Default false.
    public var allowDirect: Bool = false
    /// Optional description.
    public var description: String?

    /// A configuration with the defaults above.
    public init(name: String, subjects: [String]) {
        self.name = name
        self.subjects = subjects
    }
}

/// The state part of ``StreamInfo``.
public struct StreamState: Sendable, Equatable {
    /// Messages stored.
    public var messages: UInt64
    /// Bytes stored.
    public var bytes: UInt64
    /// First sequence stored.
    public var firstSeq: UInt64
    /// Last sequence stored.
    public var lastSeq: UInt64
    /// Consumers on the stream.
    public var consumerCount: Int
}

/// A stream's configuration name and current state.
public struct StreamInfo: Sendable {
    /// The stream name.
    public var name: String
    /// The subjects it stores.
    public var subjects: [String]
    /// When it was created.
    public var created: Date?
    /// Counters.
    public var state: StreamState
}

/// A JetStream consumer's configuration.
public struct ConsumerConfig: Sendable, Equatable {
    /// How messages must be acknowledged.
    public enum AckPolicy: Sendable, Equatable { case explicit, none, all }
    /// Where delivery starts.
    public enum DeliverPolicy: Sendable, Equatable {
        case all, new, last, lastPerSubject
        case byStartSequence(UInt64)
    }

    /// Durable name (survives restarts and inactivity); nil for an ephemeral consumer.
    public var durableName: String?
    /// Only messages on this subject (wildcards allowed); nil = all of the stream.
    public var filterSubject: String?
    /// Ack policy. Default `.explicit`.
    public var ackPolicy: AckPolicy = .explicit
    /// Redelivery after this long without ack. Default 30 s.
    public var ackWait: Duration = .seconds(30)
    /// Maximum deliveries of one message; -1 = unlimited (default).
    public var maxDeliver: Int = -1
    /// Maximum unacknowledged messages in flight. Default 1000.
    public var maxAckPending: Int = 1000
    /// Where delivery starts. Default `.all`.
    public var deliverPolicy: DeliverPolicy = .all
    /// Redelivery delays, one per attempt (then the last repeats); overrides `ackWait`.
    public var backoff: [Duration] = []
    /// Delete the consumer after this long without interest (ephemerals; durables too on
    /// newer servers); nil = server default.
    public var inactiveThreshold: Duration?
    /// Maximum pull requests waiting; nil = server default (512).
    public var maxWaiting: Int?
    /// Optional description.
    public var description: String?
    /// Keep the consumer's state (delivered and acknowledged sequences) in the server's
    /// memory even when the stream is on file: no state file rewritten about ten times a
    /// second per busy consumer, but a single server forgets the consumer when it restarts
    /// (its creator must recreate it). Fits a work-queue stream, where the stream itself holds
    /// every unacknowledged message. Newer servers refuse to change it on an existing
    /// consumer. Default false.
    public var memoryStorage = false

    /// A configuration with the defaults above.
    public init(durableName: String? = nil, filterSubject: String? = nil) {
        self.durableName = durableName
        self.filterSubject = filterSubject
    }
}

/// A consumer's counters.
public struct ConsumerInfo: Sendable {
    /// The stream.
    public var stream: String
    /// The consumer name.
    public var name: String
    /// Messages not yet delivered.
    public var numPending: UInt64
    /// Messages delivered but not acknowledged.
    public var numAckPending: Int
    /// Messages redelivered at least once and not yet acknowledged.
    public var numRedelivered: Int
    /// Pull requests waiting.
    public var numWaiting: Int
    /// Last delivered consumer sequence.
    public var deliveredConsumerSeq: UInt64
    /// Last delivered stream sequence.
    public var deliveredStreamSeq: UInt64
    /// Stream sequence below which everything is acknowledged.
    public var ackFloorStreamSeq: UInt64
    /// Whether the server keeps the consumer's state in memory (``ConsumerConfig/memoryStorage``).
    public var memoryStorage: Bool
}

/// A message as a stream stores it (read by sequence).
public struct StoredMessage: Sendable {
    /// The subject it was published to.
    public var subject: String
    /// The payload.
    public var payload: [UInt8]
    /// Its headers.
    public var headers: NatsHeaders
    /// Its sequence in the stream.
    public var sequence: UInt64
}

/// A positive publish acknowledgement.
public struct PubAck: Sendable, Equatable {
    /// The stream that stored the message.
    public var stream: String
    /// Its sequence in the stream.
    public var sequence: UInt64
    /// True when the `Nats-Msg-Id` was seen within the duplicate window (not stored again).
    public var duplicate: Bool
    /// The JetStream domain, if any.
    public var domain: String?
}

/// Completion registry for asynchronous publishes, keyed by the C message address
/// (unique while the message is in flight: cnats hands the same pointer back to the ack
/// handler, which destroys it only after the entry was taken).
final class PublishRegistry: Sendable {
    typealias Completion = @Sendable (Result<PubAck, NatsError>) -> Void
    private let completions = Mutex<[UInt: Completion]>([:])
    let failures = Atomic<Int>(0)
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func insert(_ key: UInt, _ completion: @escaping Completion) {
        completions.withLock { $0[key] = completion }
    }

    func take(_ key: UInt) -> Completion? {
        completions.withLock { $0.removeValue(forKey: key) }
    }

    var count: Int { completions.withLock { $0.count } }

    func failAll(_ error: NatsError) {
        let all = completions.withLock { state -> [Completion] in
            defer { state.removeAll() }
            return Array(state.values)
        }
        for completion in all { completion(.failure(error)) }
    }

    /// The ack handler's context: an integer id looked up here, so a late callback after
    /// the JetStream object went away finds nothing instead of a freed object.
    static let all = Mutex<[UInt: PublishRegistry]>([:])
    static let ids = Atomic<UInt>(0)

    static func register(_ registry: PublishRegistry) -> UInt {
        let id = ids.add(1, ordering: .relaxed).newValue
        all.withLock { $0[id] = registry }
        return id
    }

    static func lookup(_ id: UInt) -> PublishRegistry? { all.withLock { $0[id] } }
    static func unregister(_ id: UInt) { _ = all.withLock { $0.removeValue(forKey: id) } }
}

private func jsAckHandler(
    _ js: OpaquePointer?, _ msg: OpaquePointer?, _ pa: UnsafeMutablePointer<jsPubAck>?,
    _ pae: UnsafeMutablePointer<jsPubAckErr>?, _ closure: UnsafeMutableRawPointer?
) {
    defer { NatsLibrary.destroy(msg) }
    guard let msg, let registry = PublishRegistry.lookup(UInt(meshnats_ptr_to_token(closure))) else { return }
    let completion = registry.take(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(msg))))
    let result: Result<PubAck, NatsError>
    if let pa {
        result = .success(
            PubAck(
                stream: pa.pointee.Stream.map { String(cString: $0) } ?? "",
                sequence: pa.pointee.Sequence, duplicate: pa.pointee.Duplicate,
                domain: pa.pointee.Domain.map { String(cString: $0) }))
    } else {
        let status = pae?.pointee.Err ?? NATS_ERR
        let jsError = Int(pae?.pointee.ErrCode.rawValue ?? 0)
        let text = pae?.pointee.ErrText.map { String(cString: $0) } ?? "publish failed"
        result = .failure(
            NatsError(
                code: NatsError.code(for: status, jsError: jsError, text: text), operation: "js_PublishMsgAsync",
                detail: text, status: Int32(status.rawValue), jetStreamCode: jsError == 0 ? nil : jsError))
    }
    if let completion {
        completion(result)
    } else if case .failure(let error) = result {
        registry.failures.add(1, ordering: .relaxed)
        registry.logger.warning("jetstream async publish failed", metadata: ["nats.error": "\(error)"])
    }
}

/// A JetStream context: stream and consumer management, publishing with acks, pull
/// consumers, and the key-value store. One instance owns one C `jsCtx`.
///
/// ```swift
/// let js = try nats.jetStream()
/// _ = try js.addOrUpdateStream(StreamConfig(name: "EVENTS", subjects: ["mesh.evt.>"]))
/// let ack = try await js.publish("mesh.evt.agent.started", payload: bytes, msgId: eventID)
/// ```
///
/// Management calls and KV calls are short blocking request/replies (bounded by the
/// JetStream API wait, 5 s); `publish` and `fetch` never block a cooperative thread.
public final class JetStream: @unchecked Sendable {
    // @unchecked: `js` is an immutable pointer to a cnats JetStream context, which is
    // internally locked; `connection` keeps the C connection alive.
    let js: OpaquePointer
    /// The connection this context uses.
    public let connection: NatsConnection
    /// The JetStream API subject prefix: `$JS.API`, or `$JS.<domain>.API` with a domain.
    let apiPrefix: String
    private let registry: PublishRegistry
    private let registryID: UInt
    private let closeObserver: Int

    init(connection: NatsConnection, domain: String?, maxPending: Int) throws(NatsError) {
        let registry = PublishRegistry(logger: connection.logger)
        let registryID = PublishRegistry.register(registry)
        let arena = CStringArena()
        var options = jsOptions()
        _ = jsOptions_Init(&options)
        options.Domain = arena.dup(domain)
        options.PublishAsync.MaxPending = Int64(max(1, maxPending))
        options.PublishAsync.AckHandler = jsAckHandler
        options.PublishAsync.AckHandlerClosure = meshnats_token_to_ptr(UInt(registryID))
        var js: OpaquePointer? = nil
        let status = natsConnection_JetStream(&js, connection.nc, &options)
        withExtendedLifetime(arena) {}
        guard status == NATS_OK, let js else {
            PublishRegistry.unregister(registryID)
            throw NatsError(status: status, operation: "natsConnection_JetStream")
        }
        self.js = js
        self.connection = connection
        self.apiPrefix = domain.map { "$JS.\($0).API" } ?? "$JS.API"
        self.registry = registry
        self.registryID = registryID
        self.closeObserver = connection.core.addCloseObserver { [weak registry] in
            registry?.failAll(NatsError(code: .connectionClosed, operation: "js_PublishMsgAsync", detail: "connection closed"))
        }
    }

    deinit {
        connection.core.removeCloseObserver(closeObserver)
        jsCtx_Destroy(js)
        PublishRegistry.unregister(registryID)
        registry.failAll(NatsError(code: .connectionClosed, operation: "js_PublishMsgAsync", detail: "context released"))
    }

    // MARK: Streams

    /// Creates the stream, or updates it when it exists with a different configuration.
    /// The corresponding C functions are `js_AddStream` and `js_UpdateStream`.
    @discardableResult
    public func addOrUpdateStream(_ config: StreamConfig) throws(NatsError) -> StreamInfo {
        try SubjectRules.validateName(config.name, kind: "stream", "js_AddStream")
        for subject in config.subjects { try SubjectRules.validateSubscribe(subject, "js_AddStream") }
        let arena = CStringArena()
        var cfg = jsStreamConfig()
        _ = jsStreamConfig_Init(&cfg)
        cfg.Name = arena.dup(config.name)
        cfg.Description = arena.dup(config.description)
        cfg.Subjects = arena.array(config.subjects)
        cfg.SubjectsLen = Int32(config.subjects.count)
        cfg.Retention = switch config.retention {
        case .limits: js_LimitsPolicy
        case .workQueue: js_WorkQueuePolicy
        case .interest: js_InterestPolicy
        }
        cfg.Storage = config.storage == .file ? js_FileStorage : js_MemoryStorage
        cfg.Replicas = Int64(config.replicas)
        if let maxAge = config.maxAge { cfg.MaxAge = maxAge.nanoseconds }
        if let maxMsgs = config.maxMsgs { cfg.MaxMsgs = maxMsgs }
        if let maxBytes = config.maxBytes { cfg.MaxBytes = maxBytes }
        if let maxMsgSize = config.maxMsgSize { cfg.MaxMsgSize = maxMsgSize }
        if let perSubject = config.maxMsgsPerSubject { cfg.MaxMsgsPerSubject = perSubject }
        if let window = config.duplicateWindow { cfg.Duplicates = window.nanoseconds }
        cfg.Discard = config.discard == .old ? js_DiscardOld : js_DiscardNew
        cfg.AllowDirect = config.allowDirect

        var info: UnsafeMutablePointer<jsStreamInfo>? = nil
        var jsError = jsErrCode(rawValue: 0)
        var status = js_AddStream(&info, js, &cfg, nil, &jsError)
        if status != NATS_OK && jsError.rawValue == 10058 {  // JSStreamNameExistErr: update instead
            jsError = jsErrCode(rawValue: 0)
            status = js_UpdateStream(&info, js, &cfg, nil, &jsError)
            guard status == NATS_OK else { throw NatsError(status: status, operation: "js_UpdateStream", jsError: jsError) }
        }
        withExtendedLifetime(arena) {}
        guard status == NATS_OK, let info else { throw NatsError(status: status, operation: "js_AddStream", jsError: jsError) }
        defer { jsStreamInfo_Destroy(info) }
        return StreamInfo(info.pointee)
    }

    /// Deletes a stream and its messages.
    /// - Throws: `.notFound` when it does not exist.
    /// The corresponding C function is `js_DeleteStream`.
    public func deleteStream(_ name: String) throws(NatsError) {
        try SubjectRules.validateName(name, kind: "stream", "js_DeleteStream")
        try jsCall("js_DeleteStream") { js_DeleteStream(js, name, nil, $0) }
    }

    /// Removes all messages of a stream.
    /// The corresponding C function is `js_PurgeStream`.
    public func purgeStream(_ name: String) throws(NatsError) {
        try SubjectRules.validateName(name, kind: "stream", "js_PurgeStream")
        try jsCall("js_PurgeStream") { js_PurgeStream(js, name, nil, $0) }
    }

    /// A stream's information.
    /// - Throws: `.notFound` when it does not exist.
    /// The corresponding C function is `js_GetStreamInfo`.
    public func streamInfo(_ name: String) throws(NatsError) -> StreamInfo {
        try SubjectRules.validateName(name, kind: "stream", "js_GetStreamInfo")
        var info: UnsafeMutablePointer<jsStreamInfo>? = nil
        try jsCall("js_GetStreamInfo") { js_GetStreamInfo(&info, js, name, nil, $0) }
        guard let info else { throw NatsError(code: .notFound, operation: "js_GetStreamInfo") }
        defer { jsStreamInfo_Destroy(info) }
        return StreamInfo(info.pointee)
    }

    /// A message stored in a stream, read by sequence (nil when that sequence was deleted or
    /// never existed).
    /// - Throws: `.notFound` when the stream does not exist.
    /// The corresponding C function is `js_GetMsg`.
    public func storedMessage(stream: String, sequence: UInt64) throws(NatsError) -> StoredMessage? {
        try SubjectRules.validateName(stream, kind: "stream", "js_GetMsg")
        var msg: OpaquePointer? = nil
        var jsError = jsErrCode(rawValue: 0)
        let status = js_GetMsg(&msg, js, stream, sequence, nil, &jsError)
        guard status == NATS_OK, let msg else {
            if jsError.rawValue == 10037 || (status == NATS_NOT_FOUND && jsError.rawValue == 0) { return nil }  // no message
            throw NatsError(status: status, operation: "js_GetMsg", jsError: jsError)
        }
        defer { NatsLibrary.destroy(msg) }
        let message = NatsMessage(cMessage: msg)
        return StoredMessage(subject: message.subject, payload: message.payload, headers: message.headers, sequence: sequence)
    }

    /// Up to `batch` messages (and about `maxBytes`) of a stream from `sequence` on, in
    /// stream order, skipping deleted sequences (JetStream's batched direct get, ADR-31: one
    /// request to `$JS.API.DIRECT.GET.<stream>` with `{"seq":N,"batch":B,"max_bytes":M}`,
    /// answered by one message per stored message and an end-of-batch status; at least one
    /// message comes whatever its size). The stream needs `allow_direct`.
    /// - Returns: `[]` when nothing is stored at or after `sequence`.
    /// - Throws: `.invalidArgument` (batch outside 1...1000), `.noResponders` (no such
    ///   stream, or direct get not allowed), `.timeout`.
    /// The corresponding C function is `natsConnection_PublishRequest` (and an inbox
    /// subscription for the answers).
    public func storedMessages(
        stream: String, from sequence: UInt64, batch: Int, maxBytes: Int = 8 << 20, timeout: Duration = .seconds(5)
    ) async throws(NatsError) -> [StoredMessage] {
        try SubjectRules.validateName(stream, kind: "stream", "JetStream.storedMessages")
        guard (1...1_000).contains(batch) else {
            throw NatsError(code: .invalidArgument, operation: "JetStream.storedMessages", detail: "batch must be in 1...1000")
        }
        let body = #"{"seq":\#(max(1, sequence)),"batch":\#(batch),"max_bytes":\#(max(1, maxBytes))}"#
        return try await directBatch(stream: stream, request: body, answers: batch, timeout: timeout)
    }

    /// The last message of each subject in `subjects` that has one, in stream order (a
    /// delete marker counts as a message), read in one request (JetStream's batched direct
    /// get, ADR-31: `{"multi_last":[…],"batch":N}` to `$JS.API.DIRECT.GET.<stream>`; needs
    /// nats-server 2.11 and `allow_direct`). Subjects without a message are absent.
    /// - Throws: `.invalidArgument` (no subjects, more than ``maxLastMessagesSubjects``, or a
    ///   subject that is not a literal subject), `.noResponders` (no such stream, or direct get
    ///   not allowed), `.timeout`.
    /// The corresponding C function is `natsConnection_PublishRequest` (and an inbox
    /// subscription for the answers).
    public func lastMessages(stream: String, subjects: [String], timeout: Duration = .seconds(5)) async throws(NatsError) -> [StoredMessage] {
        try SubjectRules.validateName(stream, kind: "stream", "JetStream.lastMessages")
        guard (1...Self.maxLastMessagesSubjects).contains(subjects.count) else {
            throw NatsError(code: .invalidArgument, operation: "JetStream.lastMessages", detail: "1...\(Self.maxLastMessagesSubjects) subjects")
        }
        for subject in subjects {
            try SubjectRules.validatePublish(subject, "JetStream.lastMessages")  // literal: no wildcards
            if subject.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                throw .invalidSubject("JetStream.lastMessages", "quote or backslash in a subject")
            }
        }
        let list = subjects.map { "\"\($0)\"" }.joined(separator: ",")
        return try await directBatch(stream: stream, request: #"{"multi_last":[\#(list)],"batch":\#(subjects.count)}"#, answers: subjects.count, timeout: timeout)
    }

    /// Subjects one ``lastMessages(stream:subjects:timeout:)`` request may name.
    public static let maxLastMessagesSubjects = 256

    /// Sends one batched direct get and collects its answers until the end-of-batch status.
    private func directBatch(stream: String, request: String, answers: Int, timeout: Duration) async throws(NatsError) -> [StoredMessage] {
        let inbox = connection.newInbox()
        let collector = DirectBatch()
        let subscription = try connection.subscribe(inbox, maxPendingMessages: answers + 16, maxPendingBytes: 256 << 20) { collector.add($0) }
        defer { try? subscription.unsubscribe() }
        try connection.publish("\(apiPrefix).DIRECT.GET.\(stream)", payload: Array(request.utf8), reply: inbox)
        return try await collector.result(timeout: timeout)
    }

    /// Deletes one message of a stream by sequence.
    /// The corresponding C function is `js_DeleteMsg`.
    public func deleteMessage(stream: String, sequence: UInt64) throws(NatsError) {
        try SubjectRules.validateName(stream, kind: "stream", "js_DeleteMsg")
        try jsCall("js_DeleteMsg") { js_DeleteMsg(js, stream, sequence, nil, $0) }
    }

    // MARK: Consumers

    /// Creates a consumer, or updates it when it exists.
    /// The corresponding C functions are `js_AddConsumer` and `js_UpdateConsumer`.
    @discardableResult
    public func addOrUpdateConsumer(stream: String, config: ConsumerConfig) throws(NatsError) -> ConsumerInfo {
        try SubjectRules.validateName(stream, kind: "stream", "js_AddConsumer")
        if let durable = config.durableName { try SubjectRules.validateName(durable, kind: "consumer", "js_AddConsumer") }
        if let filter = config.filterSubject { try SubjectRules.validateSubscribe(filter, "js_AddConsumer") }
        let arena = CStringArena()
        var cfg = jsConsumerConfig()
        _ = jsConsumerConfig_Init(&cfg)
        cfg.Durable = arena.dup(config.durableName)
        cfg.Description = arena.dup(config.description)
        cfg.FilterSubject = arena.dup(config.filterSubject)
        cfg.AckPolicy = switch config.ackPolicy {
        case .explicit: js_AckExplicit
        case .none: js_AckNone
        case .all: js_AckAll
        }
        switch config.deliverPolicy {
        case .all: cfg.DeliverPolicy = js_DeliverAll
        case .new: cfg.DeliverPolicy = js_DeliverNew
        case .last: cfg.DeliverPolicy = js_DeliverLast
        case .lastPerSubject: cfg.DeliverPolicy = js_DeliverLastPerSubject
        case .byStartSequence(let sequence):
            cfg.DeliverPolicy = js_DeliverByStartSequence
            cfg.OptStartSeq = sequence
        }
        cfg.AckWait = config.ackWait.nanoseconds
        cfg.MaxDeliver = Int64(config.maxDeliver)
        cfg.MaxAckPending = Int64(config.maxAckPending)
        if !config.backoff.isEmpty {
            cfg.BackOff = arena.int64Array(config.backoff.map(\.nanoseconds))
            cfg.BackOffLen = Int32(config.backoff.count)
        }
        if let threshold = config.inactiveThreshold { cfg.InactiveThreshold = threshold.nanoseconds }
        if let maxWaiting = config.maxWaiting { cfg.MaxWaiting = Int64(maxWaiting) }
        cfg.MemoryStorage = config.memoryStorage

        var info: UnsafeMutablePointer<jsConsumerInfo>? = nil
        var jsError = jsErrCode(rawValue: 0)
        var status = js_AddConsumer(&info, js, stream, &cfg, nil, &jsError)
        if status != NATS_OK && [10013, 10105, 10148].contains(jsError.rawValue) {
            jsError = jsErrCode(rawValue: 0)
            status = js_UpdateConsumer(&info, js, stream, &cfg, nil, &jsError)
            guard status == NATS_OK else { throw NatsError(status: status, operation: "js_UpdateConsumer", jsError: jsError) }
        }
        withExtendedLifetime(arena) {}
        guard status == NATS_OK, let info else { throw NatsError(status: status, operation: "js_AddConsumer", jsError: jsError) }
        defer { jsConsumerInfo_Destroy(info) }
        return ConsumerInfo(info.pointee)
    }

    /// Deletes a consumer.
    /// The corresponding C function is `js_DeleteConsumer`.
    public func deleteConsumer(stream: String, name: String) throws(NatsError) {
        try SubjectRules.validateName(stream, kind: "stream", "js_DeleteConsumer")
        try SubjectRules.validateName(name, kind: "consumer", "js_DeleteConsumer")
        try jsCall("js_DeleteConsumer") { js_DeleteConsumer(js, stream, name, nil, $0) }
    }

    /// A consumer's information.
    /// The corresponding C function is `js_GetConsumerInfo`.
    public func consumerInfo(stream: String, name: String) throws(NatsError) -> ConsumerInfo {
        try SubjectRules.validateName(stream, kind: "stream", "js_GetConsumerInfo")
        try SubjectRules.validateName(name, kind: "consumer", "js_GetConsumerInfo")
        var info: UnsafeMutablePointer<jsConsumerInfo>? = nil
        try jsCall("js_GetConsumerInfo") { js_GetConsumerInfo(&info, js, stream, name, nil, $0) }
        guard let info else { throw NatsError(code: .notFound, operation: "js_GetConsumerInfo") }
        defer { jsConsumerInfo_Destroy(info) }
        return ConsumerInfo(info.pointee)
    }

    // MARK: Publishing

    /// Publishes and waits (asynchronously) for the stream's acknowledgement.
    /// - Parameters:
    ///   - msgId: `Nats-Msg-Id` for de-duplication within the stream's duplicate window.
    ///   - expectedLastSequence: fail with `.wrongLastRevision` unless the stream's last
    ///     sequence is this (optimistic concurrency).
    ///   - timeout: how long to wait for the ack.
    /// - Returns: the ack (`duplicate` is true for a repeated `msgId`).
    /// - Throws: `.noResponders` when no stream stores `subject`; `.timeout`; `.jetStream`.
    /// The corresponding C function is `js_PublishMsgAsync` (the ack handler resumes the
    /// caller).
    public func publish(
        _ subject: String, payload: [UInt8], headers: NatsHeaders? = nil, msgId: String? = nil,
        expectedLastSequence: UInt64? = nil, timeout: Duration = .seconds(5)
    ) async throws(NatsError) -> PubAck {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<PubAck, NatsError>, Never>) in
            do throws(NatsError) {
                try publishAsync(
                    subject, payload: payload, headers: headers, msgId: msgId, expectedLastSequence: expectedLastSequence,
                    ackTimeout: timeout
                ) { continuation.resume(returning: $0) }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        return try result.get()
    }

    /// Publishes without waiting for the ack. At most `publishAsyncMaxPending` publishes
    /// are in flight; beyond that the call waits up to 200 ms for room, then throws
    /// `.timeout`. `completion` (if any) runs once per message on a cnats thread, with
    /// the ack or the error (including `.timeout` after `ackTimeout`).
    /// The corresponding C function is `js_PublishMsgAsync`.
    public func publishAsync(
        _ subject: String, payload: [UInt8], headers: NatsHeaders? = nil, msgId: String? = nil,
        expectedLastSequence: UInt64? = nil, ackTimeout: Duration = .seconds(5),
        completion: (@Sendable (Result<PubAck, NatsError>) -> Void)? = nil
    ) throws(NatsError) {
        try SubjectRules.validatePublish(subject, "js_PublishMsgAsync")
        let created = try makeCMessage(subject: subject, reply: nil, payload: payload, headers: headers)
        var msg: OpaquePointer? = created
        var options = jsPubOptions()
        _ = jsPubOptions_Init(&options)
        options.MaxWait = ackTimeout.timeoutMilliseconds
        if let expectedLastSequence { options.ExpectLastSeq = expectedLastSequence }
        let key = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(created)))
        if let completion { registry.insert(key, completion) }
        let status: natsStatus
        if let msgId {
            status = msgId.withCString { id in
                options.MsgId = id
                return js_PublishMsgAsync(js, &msg, &options)
            }
        } else {
            status = js_PublishMsgAsync(js, &msg, &options)
        }
        if status != NATS_OK {
            if completion != nil { _ = registry.take(key) }
            natsMsg_Destroy(msg)  // still ours on failure (no-op when cnats took it)
            throw NatsError(status: status, operation: "js_PublishMsgAsync")
        }
    }

    /// Waits until every asynchronous publish has been acknowledged (or failed).
    /// Blocks the calling thread for at most `timeout`.
    /// The corresponding C function is `js_PublishAsyncComplete`.
    public func publishAsyncComplete(timeout: Duration) throws(NatsError) {
        var options = jsPubOptions()
        _ = jsPubOptions_Init(&options)
        options.MaxWait = timeout.timeoutMilliseconds
        try natsCall("js_PublishAsyncComplete") { js_PublishAsyncComplete(js, &options) }
    }

    /// Asynchronous publishes that failed and had no completion handler.
    public var publishAsyncFailures: Int { registry.failures.load(ordering: .relaxed) }

    // MARK: Pull consumers

    /// Binds a pull subscription to a durable consumer. When `filter` is given and the
    /// consumer does not exist, it is created with that filter.
    /// The corresponding C functions are `js_GetConsumerInfo` and `natsConnection_SubscribeSync`
    /// (the pull requests themselves are ``PullConsumer``'s).
    public func pullSubscribe(stream: String, consumer durable: String, filter: String? = nil) throws(NatsError) -> PullConsumer {
        try PullConsumer(jetStream: self, stream: stream, durable: durable, filter: filter)
    }

    /// Binds a pull subscription to the consumer ``addOrUpdateConsumer(stream:config:)`` has
    /// just returned, without looking it up again (one JetStream API round trip less — a
    /// worker taking over shards does this once per shard).
    /// The corresponding C function is `natsConnection_SubscribeSync`.
    public func pullSubscribe(_ consumer: ConsumerInfo) throws(NatsError) -> PullConsumer {
        try PullConsumer(jetStream: self, stream: consumer.stream, durable: consumer.name, filter: nil, exists: true)
    }
}

extension StreamInfo {
    init(_ info: jsStreamInfo) {
        let config = info.Config?.pointee
        name = config?.Name.map { String(cString: $0) } ?? ""
        var subjects: [String] = []
        if let config, let list = config.Subjects {
            for index in 0..<Int(config.SubjectsLen) { if let subject = list[index] { subjects.append(String(cString: subject)) } }
        }
        self.subjects = subjects
        created = info.Created > 0 ? Date(timeIntervalSince1970: Double(info.Created) / 1e9) : nil
        state = StreamState(
            messages: info.State.Msgs, bytes: info.State.Bytes, firstSeq: info.State.FirstSeq, lastSeq: info.State.LastSeq,
            consumerCount: Int(info.State.Consumers))
    }
}

extension ConsumerInfo {
    init(_ info: jsConsumerInfo) {
        stream = info.Stream.map { String(cString: $0) } ?? ""
        name = info.Name.map { String(cString: $0) } ?? ""
        numPending = info.NumPending
        numAckPending = Int(info.NumAckPending)
        numRedelivered = Int(info.NumRedelivered)
        numWaiting = Int(info.NumWaiting)
        deliveredConsumerSeq = info.Delivered.Consumer
        deliveredStreamSeq = info.Delivered.Stream
        ackFloorStreamSeq = info.AckFloor.Stream
        memoryStorage = info.Config?.pointee.MemoryStorage ?? false
    }
}

/// The answers of one batched direct get, gathered on the subscription's delivery thread.
private final class DirectBatch: Sendable {
    struct State {
        var messages: [StoredMessage] = []
        var outcome: Result<[StoredMessage], NatsError>?
        var waiter: CheckedContinuation<Result<[StoredMessage], NatsError>, Never>?
    }

    private let state = Mutex(State())

    func add(_ message: NatsMessage) {
        if let status = message.headers["Status"], message.payload.isEmpty {
            switch status {
            case "204", "404": finish(nil)  // end of batch; nothing at or after the sequence
            case "503": finish(NatsError(code: .noResponders, operation: "JetStream.storedMessages", detail: "no direct get for this stream"))
            default:
                let description = message.headers["Description"] ?? ""
                finish(NatsError(code: .invalidArgument, operation: "JetStream.storedMessages", detail: "status \(status) \(description)"))
            }
            return
        }
        guard let sequence = message.headers["Nats-Sequence"].flatMap(UInt64.init) else { return }
        let stored = StoredMessage(subject: message.headers["Nats-Subject"] ?? message.subject, payload: message.payload, headers: message.headers, sequence: sequence)
        state.withLock { $0.messages.append(stored) }
    }

    private func finish(_ error: NatsError?) {
        let waiter = state.withLock { state -> (CheckedContinuation<Result<[StoredMessage], NatsError>, Never>, Result<[StoredMessage], NatsError>)? in
            guard state.outcome == nil else { return nil }
            let outcome: Result<[StoredMessage], NatsError> = error.map { .failure($0) } ?? .success(state.messages)
            state.outcome = outcome
            defer { state.waiter = nil }
            return state.waiter.map { ($0, outcome) }
        }
        if let (continuation, outcome) = waiter { continuation.resume(returning: outcome) }
    }

    func result(timeout: Duration) async throws(NatsError) -> [StoredMessage] {
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[StoredMessage], NatsError>, Never>) in
            let ready = state.withLock { state -> Result<[StoredMessage], NatsError>? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let ready {
                continuation.resume(returning: ready)
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(timeout.nanoseconds))) { [self] in
                finish(NatsError(code: .timeout, operation: "JetStream.storedMessages", detail: "no end of batch in time"))
            }
        }
        return try outcome.get()
    }
}
