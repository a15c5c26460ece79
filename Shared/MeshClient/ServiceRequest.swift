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
        let message: NatsMessage
        do {
            message = try await connection.request(subject, payload: request.serializedBytes(), headers: headers(of: Request.self), timeout: timeout)
        } catch {
            throw meshError(error, what: service)
        }
        return try decode(message, service: service)
    }

    /// ``call(_:_:_:timeout:service:)`` without a task: `completion` runs once, on the
    /// thread that has the outcome (see `NatsConnection.request(_:payload:headers:timeout:completion:)`);
    /// it must not block. For callers that issue the next request from the previous reply,
    /// as a raw cnats requester does, with no thread hop in between.
    static func call<Request: MeshMessage, Reply: MeshMessage>(
        _ connection: NatsConnection, _ subject: String, _ request: Request, timeout: Duration, service: String,
        completion: @escaping @Sendable (Result<Reply, MeshError>) -> Void
    ) {
        connection.request(subject, payload: request.serializedBytes(), headers: headers(of: Request.self), timeout: timeout) { result in
            switch result {
            case .success(let message): completion(Result { () throws(MeshError) in try decode(message, service: service) })
            case .failure(let error): completion(.failure(meshError(error, what: service)))
            }
        }
    }

    private static func headers<Request: MeshMessage>(of _: Request.Type) -> NatsHeaders {
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = Request.messageType.rawValue
        return headers
    }

    private static func decode<Reply: MeshMessage>(_ message: NatsMessage, service: String) throws(MeshError) -> Reply {
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
