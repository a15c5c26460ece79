import CNats
public import Foundation

/// A key-value bucket's configuration.
public struct KeyValueConfig: Sendable, Equatable {
    /// Bucket name (letters, digits, `-`, `_`).
    public var bucket: String
    /// Values kept per key (1…64). Default 1.
    public var history: UInt8 = 1
    /// Entries expire after this long; nil = never.
    public var ttl: Duration?
    /// Replicas. Default 1.
    public var replicas: Int = 1
    /// Largest value in bytes; nil = server limit.
    public var maxValueSize: Int32?
    /// Largest bucket in bytes; nil = unlimited.
    public var maxBytes: Int64?
    /// Storage. Default `.file`.
    public var storage: StreamConfig.Storage = .file
    /// Optional description.
    public var description: String?

    /// A configuration with the defaults above.
    public init(bucket: String) {
        self.bucket = bucket
    }
}

/// One value of a key, or a delete/purge marker (in watch results and history).
public struct KeyValueEntry: Sendable, Equatable {
    /// What the entry records.
    public enum Operation: Sendable, Equatable { case put, delete, purge }

    /// The bucket.
    public var bucket: String
    /// The key.
    public var key: String
    /// The value (empty for delete/purge markers).
    public var value: [UInt8]
    /// The revision (the stream sequence), increasing across the bucket.
    public var revision: UInt64
    /// What happened.
    public var operation: Operation
    /// When it was written.
    public var created: Date?
    /// Entries after this one still pending for a watcher (0 when caught up).
    public var delta: UInt64
}

extension KeyValueEntry {
    /// Copies a C entry (does not destroy it).
    init(_ entry: OpaquePointer) {
        bucket = kvEntry_Bucket(entry).map { String(cString: $0) } ?? ""
        key = kvEntry_Key(entry).map { String(cString: $0) } ?? ""
        let length = Int(kvEntry_ValueLen(entry))
        if length > 0, let bytes = kvEntry_Value(entry) {
            value = Array(UnsafeRawBufferPointer(start: bytes, count: length))
        } else {
            value = []
        }
        revision = kvEntry_Revision(entry)
        operation = switch kvEntry_Operation(entry) {
        case kvOp_Delete: .delete
        case kvOp_Purge: .purge
        default: .put
        }
        let created = kvEntry_Created(entry)
        self.created = created > 0 ? Date(timeIntervalSince1970: Double(created) / 1e9) : nil
        delta = kvEntry_Delta(entry)
    }
}

extension JetStream {
    /// Creates a bucket, or binds to it when it already exists.
    /// The corresponding C functions are `js_CreateKeyValue` and `js_KeyValue`.
    public func createKeyValue(_ config: KeyValueConfig) throws(NatsError) -> KeyValue {
        try SubjectRules.validateName(config.bucket, kind: "bucket", "js_CreateKeyValue")
        let arena = CStringArena()
        var cfg = kvConfig()
        _ = kvConfig_Init(&cfg)
        cfg.Bucket = arena.dup(config.bucket)
        cfg.Description = arena.dup(config.description)
        cfg.History = config.history
        if let ttl = config.ttl { cfg.TTL = ttl.nanoseconds }
        cfg.Replicas = Int32(config.replicas)
        cfg.MaxValueSize = config.maxValueSize ?? -1
        cfg.MaxBytes = config.maxBytes ?? -1
        cfg.StorageType = config.storage == .file ? js_FileStorage : js_MemoryStorage
        var kv: OpaquePointer? = nil
        let status = js_CreateKeyValue(&kv, js, &cfg)
        withExtendedLifetime(arena) {}
        if status == NATS_OK, let kv { return KeyValue(kv: kv, jetStream: self, bucket: config.bucket) }
        let error = NatsError(status: status, operation: "js_CreateKeyValue")
        // Exists with another configuration: bind to it as it is.
        if let existing = try? keyValue(config.bucket) { return existing }
        throw error
    }

    /// Binds to an existing bucket.
    /// - Throws: `.notFound` when it does not exist.
    /// The corresponding C function is `js_KeyValue`.
    public func keyValue(_ bucket: String) throws(NatsError) -> KeyValue {
        try SubjectRules.validateName(bucket, kind: "bucket", "js_KeyValue")
        var kv: OpaquePointer? = nil
        try natsCall("js_KeyValue") { js_KeyValue(&kv, js, bucket) }
        guard let kv else { throw NatsError(code: .notFound, operation: "js_KeyValue") }
        return KeyValue(kv: kv, jetStream: self, bucket: bucket)
    }

    /// Deletes a bucket and all its keys.
    /// The corresponding C function is `js_DeleteKeyValue`.
    public func deleteKeyValue(_ bucket: String) throws(NatsError) {
        try SubjectRules.validateName(bucket, kind: "bucket", "js_DeleteKeyValue")
        try natsCall("js_DeleteKeyValue") { js_DeleteKeyValue(js, bucket) }
    }
}

/// A key-value bucket. Operations are short blocking request/replies (≈ 0.1 ms locally).
///
/// ```swift
/// let agents = try js.createKeyValue(KeyValueConfig(bucket: "mesh_agents"))
/// let revision = try agents.create("echo-1", spec)
/// _ = try agents.update("echo-1", newSpec, expectedRevision: revision)  // CAS
/// ```
///
/// Keys: letters, digits and `-_/=.` (dots separate tokens for watch wildcards).
public final class KeyValue: @unchecked Sendable {
    // @unchecked: `kv` is an immutable pointer to a cnats kvStore (internally locked);
    // `jetStream` keeps the C context and connection alive.
    let kv: OpaquePointer
    /// The JetStream context.
    public let jetStream: JetStream
    /// The bucket name.
    public let bucket: String

    init(kv: OpaquePointer, jetStream: JetStream, bucket: String) {
        self.kv = kv
        self.jetStream = jetStream
        self.bucket = bucket
    }

    deinit {
        kvStore_Destroy(kv)
    }

    /// The subject of a key is this prefix and the key (`$KV.<bucket>.<key>`).
    private var subjectPrefix: String { "$KV.\(bucket)." }
    /// The header marking a delete (`DEL`) or purge (`PURGE`) marker.
    static let operationHeader = "KV-Operation"
    /// The header that makes a write a compare-and-set on the key's revision.
    static let expectedRevisionHeader = "Nats-Expected-Last-Subject-Sequence"

    /// The current value of `key`; nil when missing, deleted or purged.
    /// The corresponding C function is `kvStore_Get`.
    public func get(_ key: String) throws(NatsError) -> KeyValueEntry? {
        var entry: OpaquePointer? = nil
        let status = kvStore_Get(&entry, kv, key)
        if status == NATS_NOT_FOUND { return nil }
        guard status == NATS_OK, let entry else { throw NatsError(status: status, operation: "kvStore_Get") }
        defer { kvEntry_Destroy(entry) }
        return KeyValueEntry(entry)
    }

    /// The current values of `keys`, read together without blocking a thread: batched direct
    /// gets of the keys' last revisions (``JetStream/lastMessages(stream:subjects:timeout:)``,
    /// ``JetStream/maxLastMessagesSubjects`` keys per request, the requests one after
    /// another). Keys that are missing, deleted or purged are absent from the result.
    /// - Throws: `.noResponders` when the bucket's stream has no direct get; as
    ///   ``JetStream/lastMessages(stream:subjects:timeout:)`` otherwise.
    public func values(_ keys: [String], timeout: Duration = .seconds(5)) async throws(NatsError) -> [String: KeyValueEntry] {
        var found: [String: KeyValueEntry] = [:]
        let prefix = subjectPrefix
        var start = 0
        while start < keys.count {
            let chunk = keys[start..<min(keys.count, start + JetStream.maxLastMessagesSubjects)]
            start += chunk.count
            for key in chunk { try SubjectRules.validateKey(key, "KeyValue.values") }
            let messages = try await jetStream.lastMessages(stream: "KV_\(bucket)", subjects: chunk.map { prefix + $0 }, timeout: timeout)
            for message in messages where message.subject.hasPrefix(prefix) {
                let operation = message.headers[Self.operationHeader]
                guard operation != "DEL" && operation != "PURGE" else { continue }
                let key = String(message.subject.dropFirst(prefix.count))
                found[key] = KeyValueEntry(
                    bucket: bucket, key: key, value: message.payload, revision: message.sequence, operation: .put, created: nil, delta: 0)
            }
        }
        return found
    }

    /// Writes a value.
    /// - Returns: the new revision.
    /// The corresponding C function is `kvStore_Put`.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8]) throws(NatsError) -> UInt64 {
        var revision: UInt64 = 0
        try natsCall("kvStore_Put") {
            value.withUnsafeBytes { kvStore_Put(&revision, kv, key, $0.baseAddress, Int32($0.count)) }
        }
        return revision
    }

    /// Writes a value only when the key has none (or was deleted).
    /// - Throws: `.keyExists` when it has a value.
    /// The corresponding C function is `kvStore_Create`.
    @discardableResult
    public func create(_ key: String, _ value: [UInt8]) throws(NatsError) -> UInt64 {
        var revision: UInt64 = 0
        let status = value.withUnsafeBytes { kvStore_Create(&revision, kv, key, $0.baseAddress, Int32($0.count)) }
        guard status == NATS_OK else {
            let error = NatsError(status: status, operation: "kvStore_Create")
            if error.code == .wrongLastRevision {
                throw NatsError(code: .keyExists, operation: "kvStore_Create", detail: "key exists", status: error.status)
            }
            throw error
        }
        return revision
    }

    /// Compare-and-set: writes only when the key's latest revision is `expectedRevision`.
    /// - Throws: `.wrongLastRevision` when another write came first.
    /// The corresponding C function is `kvStore_Update`.
    @discardableResult
    public func update(_ key: String, _ value: [UInt8], expectedRevision: UInt64) throws(NatsError) -> UInt64 {
        var revision: UInt64 = 0
        try natsCall("kvStore_Update") {
            value.withUnsafeBytes { kvStore_Update(&revision, kv, key, $0.baseAddress, Int32($0.count), expectedRevision) }
        }
        return revision
    }

    /// Deletes a key (leaves a delete marker; history is kept).
    /// The corresponding C function is `kvStore_Delete`.
    public func delete(_ key: String) throws(NatsError) {
        try natsCall("kvStore_Delete") { kvStore_Delete(kv, key) }
    }

    /// Writes a value without waiting for the server (``put(_:_:)``'s message, published
    /// asynchronously within the context's window: waits up to 200 ms for room, then throws
    /// `.timeout`). Publishes on one connection are stored in order.
    /// - Parameters:
    ///   - via: the JetStream context whose window and reply thread carry the write
    ///     (default: the bucket's).
    ///   - completion: the acknowledgement (its sequence is the new revision) or the
    ///     failure, on a cnats thread.
    /// The corresponding C function is `js_PublishMsgAsync`.
    public func putAsync(
        _ key: String, _ value: [UInt8], via: JetStream? = nil, completion: (@Sendable (Result<PubAck, NatsError>) -> Void)? = nil
    ) throws(NatsError) {
        try writeAsync(key, value, headers: NatsHeaders(), via: via, completion: completion)
    }

    /// Writes a value only when the key has no history, without waiting for the server: the
    /// value published to `$KV.<bucket>.<key>` with `Nats-Expected-Last-Subject-Sequence: 0`.
    /// A key with history (a value, or a deleted key's marker, which ``create(_:_:)`` would
    /// overwrite) completes with `.wrongLastRevision`; the ack's sequence is the revision.
    /// - Parameter via: the JetStream context whose window and reply thread carry the write
    ///   (default: the bucket's).
    /// The corresponding C function is `js_PublishMsgAsync`.
    public func createAsync(
        _ key: String, _ value: [UInt8], via: JetStream? = nil, completion: @escaping @Sendable (Result<PubAck, NatsError>) -> Void
    ) throws(NatsError) {
        try updateAsync(key, value, expectedRevision: 0, via: via, completion: completion)
    }

    /// Writes a value only while the key is at `expectedRevision` (0: the key has no
    /// history), without waiting for the server: ``update(_:_:expectedRevision:)``'s
    /// compare-and-set, published with `Nats-Expected-Last-Subject-Sequence`. A key that
    /// moved on completes with `.wrongLastRevision`; the ack's sequence is the new revision.
    /// - Parameter via: the JetStream context whose window and reply thread carry the write
    ///   (default: the bucket's).
    /// The corresponding C function is `js_PublishMsgAsync`.
    public func updateAsync(
        _ key: String, _ value: [UInt8], expectedRevision: UInt64, via: JetStream? = nil,
        completion: @escaping @Sendable (Result<PubAck, NatsError>) -> Void
    ) throws(NatsError) {
        var headers = NatsHeaders()
        headers[Self.expectedRevisionHeader] = String(expectedRevision)
        try writeAsync(key, value, headers: headers, via: via, completion: completion)
    }

    /// Deletes a key without waiting for the server: the delete marker `kvStore_Delete`
    /// writes (`KV-Operation: DEL`), published asynchronously within the context's window
    /// (waits up to 200 ms for room, then throws `.timeout`). Publishes on one connection
    /// are stored in order, so a later put of the key wins.
    /// - Parameters:
    ///   - expectedRevision: delete only while the key is at this revision (a key that moved
    ///     on completes with `.wrongLastRevision`) — the check `kvStore_Delete` lacks.
    ///   - via: the JetStream context whose window and reply thread carry the write
    ///     (default: the bucket's).
    ///   - completion: the acknowledgement or the failure, on a cnats thread; a failure
    ///     without one is counted in ``JetStream/publishAsyncFailures``.
    /// The corresponding C function is `js_PublishMsgAsync`.
    public func deleteAsync(
        _ key: String, expectedRevision: UInt64? = nil, via: JetStream? = nil,
        completion: (@Sendable (Result<PubAck, NatsError>) -> Void)? = nil
    ) throws(NatsError) {
        var headers = NatsHeaders()
        headers[Self.operationHeader] = "DEL"
        if let expectedRevision { headers[Self.expectedRevisionHeader] = String(expectedRevision) }
        try writeAsync(key, [], headers: headers, via: via, completion: completion)
    }

    private func writeAsync(
        _ key: String, _ value: [UInt8], headers: NatsHeaders, via: JetStream?, completion: (@Sendable (Result<PubAck, NatsError>) -> Void)?
    ) throws(NatsError) {
        try SubjectRules.validateKey(key, "js_PublishMsgAsync")
        try (via ?? jetStream).publishAsync(subjectPrefix + key, payload: value, headers: headers, completion: completion)
    }

    /// Purges a key: removes all its revisions, leaving one purge marker.
    /// The corresponding C function is `kvStore_Purge`.
    public func purge(_ key: String) throws(NatsError) {
        try natsCall("kvStore_Purge") { kvStore_Purge(kv, key, nil) }
    }

    /// All keys with a current value (`[]` for an empty bucket).
    /// The corresponding C function is `kvStore_Keys`.
    public func keys() throws(NatsError) -> [String] {
        var list = kvKeysList()
        let status = kvStore_Keys(&list, kv, nil)
        defer { kvKeysList_Destroy(&list) }
        if status == NATS_NOT_FOUND { return [] }
        guard status == NATS_OK else { throw NatsError(status: status, operation: "kvStore_Keys") }
        var keys: [String] = []
        if let raw = list.Keys {
            for index in 0..<Int(list.Count) { if let key = raw[index] { keys.append(String(cString: key)) } }
        }
        return keys
    }

    /// All kept revisions of a key, oldest first (`[]` when it has none).
    /// The corresponding C function is `kvStore_History`.
    public func history(_ key: String) throws(NatsError) -> [KeyValueEntry] {
        var list = kvEntryList()
        let status = kvStore_History(&list, kv, key, nil)
        defer { kvEntryList_Destroy(&list) }
        if status == NATS_NOT_FOUND { return [] }
        guard status == NATS_OK else { throw NatsError(status: status, operation: "kvStore_History") }
        var entries: [KeyValueEntry] = []
        if let raw = list.Entries {
            for index in 0..<Int(list.Count) { if let entry = raw[index] { entries.append(KeyValueEntry(entry)) } }
        }
        return entries
    }

    /// Watches keys matching `keys` (wildcards allowed; default all).
    ///
    /// The sequence yields the current values first (all kept revisions with
    /// `includeHistory`), then `.initialValuesDone`, then every change as it happens.
    /// With `updatesOnly`, the current values are skipped (the marker still comes).
    /// - Parameters:
    ///   - metaOnly: entries come without their values (key, revision, operation, time):
    ///     listing a bucket of large values costs only their headers.
    ///   - bufferSize: events buffered before the watcher thread waits for the consumer.
    /// The corresponding C functions are `kvStore_Watch` and `kvWatcher_Next`.
    public func watch(
        _ keys: String = ">", includeHistory: Bool = false, updatesOnly: Bool = false, metaOnly: Bool = false, bufferSize: Int = 1024
    ) throws(NatsError) -> KeyValueWatcher {
        try SubjectRules.validateSubscribe(keys, "kvStore_Watch")
        var options = kvWatchOptions()
        _ = kvWatchOptions_Init(&options)
        options.IncludeHistory = includeHistory
        options.MetaOnly = metaOnly
        var watcher: OpaquePointer? = nil
        try natsCall("kvStore_Watch") { kvStore_Watch(&watcher, kv, keys, &options) }
        guard let watcher else { throw NatsError(code: .other, operation: "kvStore_Watch") }
        return KeyValueWatcher(watcher: watcher, store: self, updatesOnly: updatesOnly, bufferSize: bufferSize)
    }
}

/// An event of a ``KeyValueWatcher``.
public enum KeyValueWatchEvent: Sendable, Equatable {
    /// A value, delete or purge.
    case entry(KeyValueEntry)
    /// All values existing when the watch started have been delivered.
    case initialValuesDone
}

/// A running KV watch, consumed as an `AsyncSequence`. A dedicated thread pulls from
/// cnats (`kvWatcher_Next`) into a bounded buffer. Ends after ``stop()`` or when the
/// connection closes; stops when the last reference goes away.
public final class KeyValueWatcher: AsyncSequence, Sendable {
    public typealias Element = KeyValueWatchEvent
    public typealias Failure = Never

    private let handle: WatcherHandle
    private let channel: BoundedChannel<KeyValueWatchEvent>

    init(watcher: OpaquePointer, store: KeyValue, updatesOnly: Bool, bufferSize: Int) {
        let handle = WatcherHandle(watcher: watcher)
        let channel = BoundedChannel<KeyValueWatchEvent>(capacity: bufferSize)
        self.handle = handle
        self.channel = channel
        let loop = WatcherLoop(handle: handle, store: store, channel: channel, updatesOnly: updatesOnly)
        let thread = Thread { loop.run() }
        thread.name = "nats-kv-watch"
        thread.stackSize = 512 * 1024
        thread.start()
    }

    deinit {
        stop()
    }

    /// Stops the watch; iteration ends.
    /// The corresponding C function is `kvWatcher_Stop`.
    public func stop() {
        handle.stop()
        channel.finish(discardBuffered: true)
    }

    /// The iterator; it keeps the watcher alive while iterating.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let owner: KeyValueWatcher

        public mutating func next() async -> KeyValueWatchEvent? { await owner.channel.next() }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> KeyValueWatchEvent? {
            await owner.channel.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(owner: self) }
}

/// Owns the C watcher: stopped by any thread, destroyed by the watcher thread when its
/// loop ends.
private final class WatcherHandle: @unchecked Sendable {
    // @unchecked: `destroyed`/`stopped` are guarded by `lock`; kvWatcher_Next (watcher
    // thread) and kvWatcher_Stop (any thread) are designed for concurrent use.
    let watcher: OpaquePointer
    private let lock = NSLock()
    private var destroyed = false
    private var stopped = false

    init(watcher: OpaquePointer) {
        self.watcher = watcher
    }

    func stop() {
        lock.lock()
        if !destroyed && !stopped { _ = kvWatcher_Stop(watcher) }
        stopped = true
        lock.unlock()
    }

    func destroy() {
        lock.lock()
        if !destroyed { kvWatcher_Destroy(watcher) }
        destroyed = true
        lock.unlock()
    }
}

/// The watcher thread's loop (holds no reference to the `KeyValueWatcher`, so dropping
/// the watcher stops it).
private final class WatcherLoop: @unchecked Sendable {
    // @unchecked: used only by the one watcher thread after construction.
    let handle: WatcherHandle
    let store: KeyValue
    let channel: BoundedChannel<KeyValueWatchEvent>
    let updatesOnly: Bool

    init(handle: WatcherHandle, store: KeyValue, channel: BoundedChannel<KeyValueWatchEvent>, updatesOnly: Bool) {
        self.handle = handle
        self.store = store
        self.channel = channel
        self.updatesOnly = updatesOnly
    }

    func run() {
        var initialDone = false
        while !channel.isFinished {
            var entry: OpaquePointer? = nil
            let status = kvWatcher_Next(&entry, handle.watcher, 60_000)
            if status == NATS_TIMEOUT { continue }
            guard status == NATS_OK else { break }
            guard let entry else {
                initialDone = true
                if !channel.put(.initialValuesDone) { break }
                continue
            }
            let value = KeyValueEntry(entry)
            kvEntry_Destroy(entry)
            if updatesOnly && !initialDone { continue }
            if !channel.put(.entry(value)) { break }
        }
        channel.finish()
        handle.destroy()
        withExtendedLifetime(store) {}
    }
}
