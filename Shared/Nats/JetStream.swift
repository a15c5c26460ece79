public final class JetStream: Sendable {
    init(connection: NatsConnection, domain: String?, maxPending: Int) throws(NatsError) {}
}
