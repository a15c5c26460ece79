import CNats

/// Options for ``NatsConnection/connect(_:logger:)``. Defaults suit a mesh service:
/// reconnect forever, flush every publish at once (`sendAsap`) for request/reply latency.
///
/// `description` never prints `user`, `password` or `token`.
public struct NatsOptions: Sendable, CustomStringConvertible {
    /// Server URLs, e.g. `["nats://127.0.0.1:4222"]`. Default: local server.
    public var servers: [String] = ["nats://127.0.0.1:4222"]
    /// Client name shown in server monitoring. Default `"mesh"`.
    public var name: String = "mesh"
    /// Reconnect attempts per server; `-1` means forever (default).
    public var maxReconnect: Int = -1
    /// Wait between reconnect attempts to the same server. Default 250 ms.
    public var reconnectWait: Duration = .milliseconds(250)
    /// Random jitter added to `reconnectWait`. Default 100 ms.
    public var reconnectJitter: Duration = .milliseconds(100)
    /// Interval of client PINGs. Default 10 s.
    public var pingInterval: Duration = .seconds(10)
    /// Unanswered PINGs before the connection is considered stale. Default 3.
    public var maxPingsOut = 3
    /// Flush every publish immediately instead of batching (`natsOptions_SetSendAsap`).
    /// Default true: replies and requests go out without the flusher's delay.
    public var sendAsap: Bool = true
    /// Carry requests and responses on a second connection whose writes are coalesced
    /// under load (one `send` for a burst of replies instead of one each; a lone request or
    /// reply still leaves at once). Default true. Requests and responses are then not
    /// ordered with publishes made on the main connection. See `CoalescingLink`.
    public var coalescingLink = true
    /// Keep trying in the background when the first connect fails (the connection is
    /// returned at once; a `.reconnected` event tells when it is up). Default false.
    public var retryOnFailedConnect = false
    /// Timeout of one connection attempt. Default 2 s.
    public var connectTimeout: Duration = .seconds(2)
    /// Bytes buffered while reconnecting (`natsOptions_SetReconnectBufSize`). Default 8 MiB.
    public var reconnectBufferSize: Int = 8 * 1024 * 1024
    /// Deliver all asynchronous subscriptions from a shared thread pool instead of one
    /// thread per subscription (`natsOptions_UseGlobalMessageDelivery`). Default false.
    /// Each subscription stays on one pool thread, so its messages keep their order.
    public var useGlobalMessageDelivery = false
    /// Threads of that shared pool, for the whole process (`nats_SetMessageDeliveryPoolSize`;
    /// the pool never shrinks, so the largest size asked for wins). Used only with
    /// ``useGlobalMessageDelivery``. Default 2.
    public var globalDeliveryThreads = 2
    /// User name for user/password authentication. Never printed.
    public var user: String?
    /// Password for user/password authentication. Never printed.
    public var password: String?
    /// Token authentication. Never printed.
    public var token: String?

    /// Options with the defaults above.
    public init() {}

    public var description: String {
        "NatsOptions(servers: \(servers), name: \(name), maxReconnect: \(maxReconnect), sendAsap: \(sendAsap)"
            + ", auth: \(user != nil ? "user" : token != nil ? "token" : "none"))"
    }
}

/// Message headers (NATS/1.0). Names are case-sensitive, as in cnats; a name may carry
/// several values, kept in insertion order.
///
/// ```swift
/// var headers = NatsHeaders()
/// headers["traceparent"] = "00-…"
/// headers.append(name: "X-Tag", value: "a")
/// ```
public struct NatsHeaders: Sendable, Equatable, CustomStringConvertible {
    /// Name/value pairs in order.
    public private(set) var fields: [(name: String, value: String)] = []

    /// Empty headers.
    public init() {}

    /// Headers from pairs, in order.
    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { (name: $0.0, value: $0.1) }
    }

    /// The first value for `name`; setting replaces all values (nil removes the name).
    public subscript(name: String) -> String? {
        get { fields.first { $0.name == name }?.value }
        set {
            fields.removeAll { $0.name == name }
            if let newValue { fields.append((name: name, value: newValue)) }
        }
    }

    /// All values for `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { $0.name == name }.map(\.value)
    }

    /// Adds a value, keeping existing ones.
    public mutating func append(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// The distinct names, in first-seen order.
    public var names: [String] {
        var seen = Set<String>()
        return fields.compactMap { seen.insert($0.name).inserted ? $0.name : nil }
    }

    /// Whether there are no headers.
    public var isEmpty: Bool { fields.isEmpty }

    /// Names only: header values may carry data that must not reach logs.
    public var description: String { "NatsHeaders(\(names))" }

    public static func == (lhs: NatsHeaders, rhs: NatsHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// A received core NATS message (copied out of the C message, which is freed at once).
public struct NatsMessage: Sendable, CustomStringConvertible {
    /// The subject it was published to.
    public let subject: String
    /// The reply subject, when the sender expects an answer.
    public let reply: String?
    /// The payload bytes.
    public let payload: [UInt8]
    /// The headers (empty when none).
    public let headers: NatsHeaders

    /// Makes a message value (useful in tests of code that handles messages).
    public init(subject: String, reply: String? = nil, payload: [UInt8], headers: NatsHeaders = NatsHeaders()) {
        self.subject = subject
        self.reply = reply
        self.payload = payload
        self.headers = headers
    }

    /// Subject, reply and size only — never the payload.
    public var description: String {
        "NatsMessage(subject: \(subject), reply: \(reply ?? "-"), bytes: \(payload.count))"
    }
}

// MARK: - C conversions

extension NatsHeaders {
    /// Reads all headers of a C message.
    /// The corresponding C functions are `natsMsgHeader_Keys` and `natsMsgHeader_Values`.
    init(cMessage msg: OpaquePointer) {
        self.init()
        var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>? = nil
        var count: Int32 = 0
        guard natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK, let keys else { return }
        defer { meshnats_free(keys) }
        for index in 0..<Int(count) {
            guard let key = keys[index] else { continue }
            let name = String(cString: key)
            var values: UnsafeMutablePointer<UnsafePointer<CChar>?>? = nil
            var valueCount: Int32 = 0
            guard natsMsgHeader_Values(msg, key, &values, &valueCount) == NATS_OK, let values else { continue }
            for valueIndex in 0..<Int(valueCount) {
                if let value = values[valueIndex] { fields.append((name: name, value: String(cString: value))) }
            }
            meshnats_free(values)
        }
    }

    /// Writes these headers into a C message.
    /// The corresponding C function is `natsMsgHeader_Add`.
    func apply(to msg: OpaquePointer) throws(NatsError) {
        for field in fields {
            try natsCall("natsMsgHeader_Add") { natsMsgHeader_Add(msg, field.name, field.value) }
        }
    }
}

/// Copies `length` bytes at `data` into an array.
@inline(__always)
func copyBytes(_ data: UnsafePointer<CChar>?, _ length: Int32) -> [UInt8] {
    guard let data, length > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
}

extension NatsMessage {
    /// Copies a C message (does not destroy it).
    init(cMessage msg: OpaquePointer) {
        subject = String(cString: natsMsg_GetSubject(msg))
        reply = natsMsg_GetReply(msg).flatMap { $0.pointee == 0 ? nil : String(cString: $0) }
        payload = copyBytes(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))
        headers = NatsHeaders(cMessage: msg)
    }
}

/// Creates a C message with payload and headers; the caller destroys it.
/// The corresponding C functions are `natsMsg_Create` and `natsMsgHeader_Add`.
func makeCMessage(subject: String, reply: String?, payload: [UInt8], headers: NatsHeaders?) throws(NatsError) -> OpaquePointer {
    var msg: OpaquePointer? = nil
    let status = payload.withUnsafeBytes { bytes in
        natsMsg_Create(&msg, subject, reply, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
    }
    guard status == NATS_OK, let msg else { throw NatsError(status: status, operation: "natsMsg_Create") }
    if let headers {
        do { try headers.apply(to: msg) } catch {
            NatsLibrary.destroy(msg)
            throw error
        }
    }
    return msg
}
