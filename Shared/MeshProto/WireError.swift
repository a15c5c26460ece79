/// Why bytes could not be decoded into a mesh message.
///
/// `description` is safe to log: it names the message type and the offending field, never
/// the payload. Decoding never traps; every failure surfaces as a `WireError`.
///
/// ```swift
/// do {
///     let request = try ActionRequest(serializedBytes: bytes)
/// } catch {
///     if error.code == .tooLarge { /* reply 413 */ }
/// }
/// ```
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// The input is larger than `WireLimits.maxMessageBytes`; it was not parsed.
        case tooLarge = "too_large"
        /// protobuf-c rejected the bytes (truncated, bad tag, bad wire type, bad length).
        case malformed
        /// The bytes parse, but a value is not acceptable (e.g. a string that is not UTF-8).
        case invalidValue = "invalid_value"
    }

    /// The kind of failure.
    public var code: Code
    /// The message type being decoded, e.g. `mesh.v1.ActionRequest`.
    public var messageType: MessageType
    /// The field at fault (`AgentSpec.labels`), when one is known.
    public var field: String?
    /// Size of the rejected input, in bytes.
    public var byteCount: Int

    public init(code: Code, messageType: MessageType, field: String? = nil, byteCount: Int) {
        self.code = code
        self.messageType = messageType
        self.field = field
        self.byteCount = byteCount
    }

    public var description: String {
        var text = "WireError(\(code.rawValue)): \(messageType.rawValue), \(byteCount) bytes"
        if let field { text += ", field \(field)" }
        return text
    }
}

/// Bounds applied before any byte of untrusted input is parsed.
///
/// ```swift
/// let snapshot = try MetricSnapshot(serializedBytes: bytes, limits: WireLimits(maxMessageBytes: 16 << 20))
/// ```
public struct WireLimits: Sendable, Hashable {
    /// Largest accepted encoding, in bytes; larger input fails with `.tooLarge`.
    /// Default: 4 MiB (4 194 304 bytes); raise it per call for known large messages.
    public var maxMessageBytes: Int

    /// - Parameter maxMessageBytes: largest accepted encoding in bytes (default 4 MiB).
    public init(maxMessageBytes: Int = WireLimits.defaultMaxMessageBytes) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// 4 MiB.
    public static let defaultMaxMessageBytes = 4 << 20

    /// The default limits (4 MiB per message).
    public static let `default` = WireLimits()
}
