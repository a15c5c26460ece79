public import Nats
import Foundation

/// The client side of micro discovery: asks every service (or one name) and gathers all
/// replies that arrive within a time window — a discovery request has many responders.
public enum MicroDiscovery {
    /// `$SRV.PING[.<name>]` — every running instance.
    public static func ping(_ connection: NatsConnection, name: String? = nil, window: Duration = .milliseconds(500)) async throws -> [MicroPingResponse] {
        try await gather(connection, verb: .ping, name: name, window: window).compactMap { try? MicroJSON.decode(MicroPingResponse.self, from: $0) }
    }

    /// `$SRV.INFO[.<name>]`.
    public static func info(_ connection: NatsConnection, name: String? = nil, window: Duration = .milliseconds(500)) async throws -> [MicroInfoResponse] {
        try await gather(connection, verb: .info, name: name, window: window).compactMap { try? MicroJSON.decode(MicroInfoResponse.self, from: $0) }
    }

    /// `$SRV.STATS[.<name>]`.
    public static func stats(_ connection: NatsConnection, name: String? = nil, window: Duration = .milliseconds(500)) async throws -> [MicroStatsResponse] {
        try await gather(connection, verb: .stats, name: name, window: window).compactMap { try? MicroJSON.decode(MicroStatsResponse.self, from: $0) }
    }

    /// Publishes one discovery request with a fresh inbox as reply subject and collects
    /// the reply payloads until `window` has passed (at most 10 000). Replies that are not
    /// a response of the verb (the server's "no responders" status, a misbehaving peer)
    /// are left out by the callers' decoding.
    static func gather(_ connection: NatsConnection, verb: MicroService.Verb, name: String?, window: Duration) async throws -> [[UInt8]] {
        let inbox = connection.newInbox()
        let subscription = try connection.subscribe(inbox, queue: nil, bufferSize: 10_000)
        let subject = MicroService.discoverySubjects(verb: verb, name: name).last!
        try connection.publish(subject, payload: [], reply: inbox)
        return await withTaskGroup(of: [[UInt8]]?.self) { group in
            group.addTask {
                var replies: [[UInt8]] = []
                for await message in subscription {
                    replies.append(message.payload)
                    if replies.count >= 10_000 { break }
                }
                return replies
            }
            group.addTask {
                try? await Task.sleep(for: window)
                try? subscription.unsubscribe()
                return nil
            }
            var result: [[UInt8]] = []
            for await replies in group { if let replies { result = replies } }
            return result
        }
    }
}
