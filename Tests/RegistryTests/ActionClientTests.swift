import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
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
            let requests = Mutex<[ActionRequest]>([])
        }
        private let seen = Seen()
        private let subscription: NatsHandlerSubscription
        var requestIDs: [String] { seen.requests.withLock { $0.map(\.requestId) } }
        /// The shard epoch each attempt was stamped with.
        var epochs: [UInt64] { seen.requests.withLock { $0.map(\.shardEpoch) } }

        /// - Parameter answer: the reply to attempt N; nil leaves it unanswered (an owner
        ///   that died with it).
        init(_ connection: NatsConnection, subject: String, answer: @escaping @Sendable (Int, ActionRequest) -> ActionReply?) throws {
            let seen = self.seen
            subscription = try connection.subscribe(subject) { message in
                guard let request = try? ActionRequest(serializedBytes: message.payload) else { return }
                let attempt = seen.requests.withLock { requests in
                    requests.append(request)
                    return requests.count
                }
                guard var reply = answer(attempt, request) else { return }
                reply.requestId = request.requestId
                if reply.status == .ok { reply.payload = request.payload }
                try? connection.respond(to: message, payload: reply.serializedBytes())
            }
            try connection.flush(timeout: .seconds(2))
        }
    }

    /// A nats-server with the mesh's streams and buckets, and a connection to it.
    static func mesh() async throws -> (NatsServer, NatsConnection, ClusterResources) {
        let server = try await NatsServer.start()
        var options = NatsOptions()
        options.servers = [server.url]
        let connection = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        let resources = try await ClusterResources.ensure(
            try connection.jetStream(), subjects: try Subjects(), replicas: 1, shardCount: 64, logger: Logger(label: "test"))
        return (server, connection, resources)
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
        let movingOwner = try Owner(connection, subject: subject(moving)) { attempt, _ in attempt <= 2 ? unavailable : ActionReply(status: .ok) }
        let served = await Self.act(client, moving, payload: Array("hello".utf8), timeout: .seconds(5))
        #expect(try served.get() == Array("hello".utf8))
        let ids = movingOwner.requestIDs
        #expect(ids.count == 3 && Set(ids).count == 1, "\(ids)")

        // Busy may have been queued: never sent again.
        let busy = try AgentID("busy-one")
        let busyOwner = try Owner(connection, subject: subject(busy)) { _, _ in
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

    /// With a shard directory, every attempt carries the epoch the client knows; an owner
    /// that answers `stale_epoch` reports its own, newer one, which the next attempt carries
    /// (a directory that lags behind costs one round trip, not the call).
    @Test func attemptsCarryTheKnownEpochAndAStaleEpochAnswerRaisesIt() async throws {
        let (server, connection, resources) = try await Self.mesh()
        defer {
            connection.close()
            server.stop()
        }
        let (subjects, shardMap) = (try Subjects(), resources.shardMap)
        let agent = try AgentID("stamped")
        let shard = shardMap.shard(of: agent)
        _ = try resources.shards.put(String(shard), ShardAssignment(shard: UInt32(shard), nodeId: "worker-1", epoch: 3).serializedBytes())

        let client = try await ActionClient.watchingShards(connection: connection, subjects: subjects, shardMap: shardMap)
        defer { client.stop() }
        let owner = try Owner(connection, subject: subjects.action(shard: shard, agent: agent)) { _, request in
            guard request.shardEpoch >= 9 else {
                return ActionReply(
                    status: .error, error: ErrorReply(code: "stale_epoch", message: "shard at epoch 9", retryAfterMs: 1), shardEpoch: 9)
            }
            return ActionReply(status: .ok, shardEpoch: 9)
        }
        #expect(try await client.act(agent, action: "echo", payload: Array("a".utf8)) == Array("a".utf8))
        #expect(owner.epochs == [3, 9])
        // The callback form does the same.
        #expect(try await Self.act(client, agent, payload: Array("b".utf8), timeout: .seconds(5)).get() == Array("b".utf8))
        #expect(owner.epochs == [3, 9, 3, 9])

        // Once the directory learns epoch 9, the first attempt carries it.
        _ = try resources.shards.put(String(shard), ShardAssignment(shard: UInt32(shard), nodeId: "worker-2", epoch: 9).serializedBytes())
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(5)) {
            (try? await client.act(agent, action: "echo", payload: [])) != nil && owner.epochs.last == 9 && owner.epochs.suffix(2) != [3, 9]
        })
        // Without a directory, "any owner" (0).
        let plain = ActionClient(connection: connection, subjects: subjects, shardMap: shardMap)
        _ = try? await plain.act(agent, action: "echo", payload: [], timeout: .milliseconds(200))
        #expect(owner.epochs.last == 0)
    }

    /// An idempotent call re-sends an unanswered attempt as soon as the agent's shard moves
    /// (its owner died with the request), not only after its attempt timeout; a call that is
    /// not idempotent never does.
    @Test func anIdempotentAttemptIsSentAgainWhenItsShardMoves() async throws {
        let (server, connection, resources) = try await Self.mesh()
        defer {
            connection.close()
            server.stop()
        }
        let (subjects, shardMap) = (try Subjects(), resources.shardMap)
        let directory = try ShardDirectory(kv: resources.shards, shardCount: shardMap.shardCount)
        let watching = Task { await directory.run() }
        defer { watching.cancel() }
        await directory.waitUntilLoaded()
        // An attempt timeout far beyond the calls' own: only the move can send again.
        let client = ActionClient(
            connection: connection, subjects: subjects, shardMap: shardMap, shards: directory, idempotentAttemptTimeout: .seconds(600))
        func assign(_ agent: AgentID, epoch: UInt64) throws {
            let shard = shardMap.shard(of: agent)
            _ = try resources.shards.put(String(shard), ShardAssignment(shard: UInt32(shard), nodeId: "worker-\(epoch)", epoch: epoch).serializedBytes())
        }

        let read = try AgentID("read-me")
        try assign(read, epoch: 1)
        let reader = try Owner(connection, subject: subjects.action(shard: shardMap.shard(of: read), agent: read)) { attempt, _ in
            attempt == 1 ? nil : ActionReply(status: .ok)
        }
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(5)) { directory.owner(of: shardMap.shard(of: read)).epoch == 1 })
        let call = Task { try await client.act(read, action: "get", payload: Array("x".utf8), timeout: .seconds(20), idempotent: true) }
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(5)) { reader.requestIDs.count == 1 })
        try assign(read, epoch: 2)
        #expect(try await call.value == Array("x".utf8))
        #expect(reader.epochs == [1, 2] && Set(reader.requestIDs).count == 1, "\(reader.epochs)")

        let write = try AgentID("write-me")
        try assign(write, epoch: 1)
        let writer = try Owner(connection, subject: subjects.action(shard: shardMap.shard(of: write), agent: write)) { _, _ in nil }
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(5)) { directory.owner(of: shardMap.shard(of: write)).epoch == 1 })
        let add = Task { try await client.act(write, action: "add", payload: [], timeout: .seconds(2)) }
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(5)) { writer.requestIDs.count == 1 })
        try assign(write, epoch: 2)
        await #expect(throws: MeshError.self) { _ = try await add.value }
        #expect(writer.requestIDs.count == 1, "a call that is not idempotent was sent twice")
    }
}
