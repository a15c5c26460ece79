import MeshCore
import MeshProto
import Nats

/// One typed request/reply to a mesh service (registry, supervisor): the message type in
/// the headers, the reply decoded, every failure a ``MeshError``.
enum ServiceRequest {
    /// Sends `request` on `subject` and decodes the reply.
    /// - Parameter service: who serves it, for messages ("the registry").
    /// - Throws: ``MeshError`` `unavailable` (no responders, not connected), `timeout`,
    ///   `internal` for a reply that does not decode.
    static func call<Request: MeshMessage, Reply: MeshMessage>(
        _ connection: NatsConnection, _ subject: String, _ request: Request, timeout: Duration, service: String
    ) async throws(MeshError) -> Reply {
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = Request.messageType.rawValue
        let message: NatsMessage
        do {
            message = try await connection.request(subject, payload: request.serializedBytes(), headers: headers, timeout: timeout)
        } catch {
            throw meshError(error, what: service)
        }
        do {
            return try Reply(serializedBytes: message.payload)
        } catch {
            throw MeshError(.internalError, "\(service)'s reply is not a \(Reply.messageType): \(error)")
        }
    }

    /// The mesh error for a failed NATS request to `what`.
    static func meshError(_ error: NatsError, what: String) -> MeshError {
        switch error.code {
        case .noResponders: MeshError(.unavailable, "\(what): nobody is serving (no responders)", retryAfter: .milliseconds(500))
        case .timeout: MeshError(.timeout, "\(what): no reply in time")
        case .connectionClosed, .notConnected: MeshError(.unavailable, "\(what): not connected to NATS", retryAfter: .milliseconds(500))
        default: MeshError(.unavailable, "\(what): \(error)")
        }
    }
}
