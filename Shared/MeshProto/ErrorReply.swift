import CMeshProto

/// The one error shape on the wire (`mesh.v1.ErrorReply`): in action replies, task results
/// and agent records. Its fields are safe to log.
///
/// ```swift
/// let busy = ErrorReply(code: "busy", message: "mailbox full", retryAfterMs: 50)
/// ```
public struct ErrorReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Stable snake_case code: `busy`, `not_found`, `timeout`, `stale_epoch`, `wrong_shard`,
    /// `invalid_argument`, `unavailable`, `internal`, ...
    public var code: String
    /// Human-readable text.
    public var message: String
    /// When > 0, the caller may retry after this many milliseconds.
    public var retryAfterMs: UInt64

    public init(version: UInt32 = SchemaVersion.current, code: String = "", message: String = "", retryAfterMs: UInt64 = 0) {
        self.version = version
        self.code = code
        self.message = message
        self.retryAfterMs = retryAfterMs
    }
}

extension ErrorReply: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.ErrorReply"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension ErrorReply: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__error_reply__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ErrorReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.code, code)
        arena.set(&c.pointee.message, message)
        c.pointee.retry_after_ms = retryAfterMs
    }

    init(c: UnsafePointer<Mesh__V1__ErrorReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            code: try WireRead.string(c.code, "ErrorReply.code"),
            message: try WireRead.string(c.message, "ErrorReply.message"),
            retryAfterMs: c.retry_after_ms)
    }
}
