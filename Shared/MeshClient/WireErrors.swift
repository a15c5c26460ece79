public import MeshCore
public import MeshProto

extension MeshError {
    /// The mesh error an `ErrorReply` carries (`internal` when it carries no code).
    public init(reply: ErrorReply?, context: String) {
        guard let reply, !reply.code.isEmpty else {
            self.init(.internalError, "\(context): an error reply without a code")
            return
        }
        self.init(
            Code(rawValue: reply.code), reply.message,
            retryAfter: reply.retryAfterMs > 0 ? .milliseconds(Int64(clamping: reply.retryAfterMs)) : nil)
    }

    /// The wire form of this error.
    public var errorReply: ErrorReply {
        let retryMs = retryAfter.map { UInt64(max(0, $0.totalMilliseconds)) }
        return ErrorReply(code: code.rawValue, message: message, retryAfterMs: retryMs ?? 0)
    }
}
