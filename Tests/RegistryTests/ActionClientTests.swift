import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Synchronization
import Testing

/// `ActionClient`'s callback form against a real nats-server, with a stand-in owner that
/// answers as a worker would: "try again" answers are retried with the same request id,
/// anything else ends the call once.
@Suite(.enabled(if: TestEnvironment.natsAvailable), .serialized)
struct ActionClientTests {
    /// A stand-in owner of `agent`'s shard: answers every attempt with `answer(attempt)` and
    /// records the request ids it saw.
    final class Owner: Sendable {
        final class Seen: Sendable {
            let ids = Mutex<[String]>([])
        }
        private let seen = Seen()
        private let subscription: NatsHandlerSubscription
        var requestIDs: [String] { seen.ids.withLock { $0 } }

        init(_ connection: NatsConnection, subject: String, answer: @escaping @Sendable (Int) -> ActionReply) throws {
            let seen = self.seen
            subscription = try connection.subscribe(subject) { message in
                guard let request = try? ActionRequest(serializedBytes: message.payload) else { return }
                let attempt = seen.ids.withLock { ids in
                    ids.append(request.requestId)
                    return ids.count
                }
                var reply = answer(attempt)
                reply.requestId = request.requestId
                if reply.status == .ok { reply.payload = request.payload }
                try? connection.respond(to: message, payload: reply.serializedBytes())
            }
            try connection.flush(timeout: .seconds(2))
        }
    }

    /// Runs the callback form and waits for its one completion.
    static func act(_ client: ActionClient, _ agent: AgentID, payload: [UInt8], timeout: Duration) async -> Result<[UInt8], MeshError> {
        await withCheckedContinuation { continuation in
            client.act(agent, action: "echo", payload: payload, timeout: timeout) { continuation.resume(returning: $0) }
        }
    }

    @Test func tryAgainAnswersAreRetriedAndOthersEndTheCall() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        var options = NatsOptions()
        options.servers = [server.url]
        let connection = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        let subjects = try Subjects()
        let shardMap = try ShardMap()
        let client = ActionClient(connection: connection, subjects: subjects, shardMap: shardMap)
        func subject(_ agent: AgentID) -> String { subjects.action(shard: shardMap.shard(of: agent), agent: agent) }

        // Unavailable (shard in transit) twice, then served: one success, three attempts, one request id.
        let moving = try AgentID("moving")
        let unavailable = ActionReply(status: .error, error: ErrorReply(code: "unavailable", message: "shard in transit", retryAfterMs: 5))
        let movingOwner = try Owner(connection, subject: subject(moving)) { $0 <= 2 ? unavailable : ActionReply(status: .ok) }
        let served = await Self.act(client, moving, payload: Array("hello".utf8), timeout: .seconds(5))
        #expect(try served.get() == Array("hello".utf8))
        let ids = movingOwner.requestIDs
        #expect(ids.count == 3 && Set(ids).count == 1, "\(ids)")

        // Busy may have been queued: never sent again.
        let busy = try AgentID("busy-one")
        let busyOwner = try Owner(connection, subject: subject(busy)) { _ in
            ActionReply(status: .error, error: ErrorReply(code: "busy", message: "mailbox full"))
        }
        let refused = await Self.act(client, busy, payload: [], timeout: .seconds(5))
        #expect(throws: MeshError.self) { try refused.get() }
        if case .failure(let error) = refused { #expect(error.code == .busy) }
        #expect(busyOwner.requestIDs.count == 1)

        // Nobody serves the shard: retried until the deadline, then `unavailable`.
        let orphan = await Self.act(client, try AgentID("orphan"), payload: [], timeout: .milliseconds(300))
        if case .failure(let error) = orphan { #expect(error.code == .unavailable, "\(error)") } else { Issue.record("expected a failure") }
        #expect(connection.requestsInFlight == 0)
        withExtendedLifetime((movingOwner, busyOwner)) {}
    }
}
