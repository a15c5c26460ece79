import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Nats
import ServiceLifecycle
import Store
import Synchronization

/// Copies a JetStream stream into PostgreSQL off the request path: one durable pull
/// consumer shared by every registry instance (each message is written by one of them),
/// batches of at most ``batch`` messages or ``window`` of waiting, one transaction per
/// batch, acknowledged only after it committed. Writes are idempotent (revision guards,
/// `ON CONFLICT DO NOTHING`), so a redelivery after a crash between commit and ack
/// changes nothing. When PostgreSQL is down the batch is nak'ed with a delay and
/// redelivered later: rows catch up once it is back.
///
/// A feed may write up to ``Feed/writers`` batches at once (the next batch is fetched while
/// the previous one commits). Only for feeds whose batches cannot deadlock each other: each
/// batch one statement with its rows in key order, so concurrent batches lock rows in the
/// same order.
struct PostgresMirror: Service {
    /// What the mirror copies; `write` turns one batch into rows inside a transaction.
    struct Feed: Sendable {
        var name: String
        var stream: String
        var consumer: String
        var filter: String
        /// Batches written at once by one instance.
        var writers = 1
        var write: @Sendable ([JetStreamMessage], Store.Connection) async throws -> Void
    }

    static let batch = 500
    static let window: Duration = .milliseconds(250)
    static let retryDelay: Duration = .seconds(1)

    let context: ServiceContext
    let store: Store
    let feed: Feed

    func run() async throws {
        let js = try context.nats.jetStream()
        var config = ConsumerConfig(durableName: feed.consumer, filterSubject: feed.filter)
        config.ackWait = .seconds(30)
        config.maxAckPending = 4 * Self.batch
        config.description = "Registry: \(feed.name) → PostgreSQL"
        let consumer = try await StartupRetry.run("\(feed.name) consumer", logger: context.logger) {
            return try js.pullSubscribe(try js.addOrUpdateConsumer(stream: feed.stream, config: config))
        }
        defer { try? consumer.unsubscribe() }
        // On shutdown the subscription goes at once, which ends a fetch in progress instead of
        // letting it run out its window (the host stops services one after another).
        try await withGracefulShutdownHandler {
            try await mirror(consumer)
        } onGracefulShutdown: {
            try? consumer.unsubscribe()
        }
    }

    private func mirror(_ consumer: PullConsumer) async throws {
        let failures = FailureStreak()
        await withTaskGroup(of: Void.self) { group in
            var writing = 0
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let messages: [JetStreamMessage]
                do throws(NatsError) {
                    messages = try await consumer.fetch(batch: Self.batch, expires: Self.window)
                } catch {
                    if error.code == .connectionClosed || Task.isShuttingDownGracefully { break }
                    context.logger.debug("mirror fetch failed", metadata: ["mesh.mirror": "\(feed.name)", "error": "\(error)"])
                    try? await Task.sleep(for: Self.window)
                    continue
                }
                if messages.isEmpty { continue }
                if writing >= max(1, feed.writers) {
                    await group.next()
                    writing -= 1
                }
                writing += 1
                group.addTask { await write(messages, failures: failures) }
            }
            await group.waitForAll()
        }
    }

    /// Writes one batch in a transaction and acknowledges it, or naks it for later.
    private func write(_ messages: [JetStreamMessage], failures: FailureStreak) async {
        do {
            try await store.transaction { connection in try await feed.write(messages, connection) }
            try? JetStreamMessage.ack(messages)
            let resumed = failures.count.withLock { count in
                defer { count = 0 }
                return count
            }
            if resumed > 0 {
                context.logger.info("mirror writes resumed", metadata: ["mesh.mirror": "\(feed.name)", "mesh.failures": "\(resumed)"])
            }
        } catch {
            for message in messages { try? message.nak(delay: Self.retryDelay) }
            let count = failures.count.withLock { count in
                count += 1
                return count
            }
            if count == 1 || count % 30 == 0 {
                context.logger.warning(
                    "mirror batch not written; redelivered later",
                    metadata: ["mesh.mirror": "\(feed.name)", "mesh.batch": "\(messages.count)", "mesh.failures": "\(count)", "error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.retryDelay) }
        }
    }
}

/// Failed batches in a row, shared by a feed's concurrent writers (for the log).
private final class FailureStreak: Sendable {
    let count = Mutex(0)
}

/// The registry's three feeds: `mesh_agents` and `mesh_status` (KV streams) into
/// `agents`, agent events into `agent_events`.
enum MirrorFeeds {
    /// Transaction-level advisory lock taken by every batch that writes `agents`: the spec
    /// and status feeds (of every registry instance) update the same rows with different
    /// statements, which in parallel deadlock each other; in turn they never do.
    static let agentsTableLock: Int64 = 0x6d65_7368_6167_6e74

    static func lockAgentsTable(_ connection: Store.Connection) async throws {
        try await connection.execute("SELECT pg_advisory_xact_lock($1)", [.int(agentsTableLock)])
    }

    static func agents(subjects: Subjects, shardMap: ShardMap, logger: Logger) -> PostgresMirror.Feed {
        let bucket = subjects.agentsBucket
        let prefix = Subjects.keyValuePrefix(bucket: bucket)
        return PostgresMirror.Feed(
            name: "agents", stream: Subjects.keyValueStream(bucket: bucket), consumer: subjects.registryAgentsMirrorConsumer,
            filter: Subjects.keyValueAll(bucket: bucket)
        ) { messages, connection in
            var puts: [[PostgresValue]] = []
            var deletes: [[PostgresValue]] = []
            for entry in latestPerKey(messages, prefix: prefix) {
                let shard = (try? AgentID(entry.key)).map { shardMap.shard(of: $0) } ?? 0
                if entry.isDelete {
                    deletes.append([.text(entry.key), .int(Int64(entry.revision)), .int(Int64(shard)), .timestamp(entry.time)])
                    continue
                }
                guard let record = try? AgentRecord(serializedBytes: entry.message.payload) else {
                    logger.warning("undecodable agent record not mirrored", metadata: ["mesh.agent.id": "\(entry.key)"])
                    continue
                }
                puts.append([
                    .text(entry.key), .text(record.spec.kind), .int(Int64(clamping: record.spec.generation)),
                    .int(Int64(entry.revision)), .text(JSONText.string(record.spec.labels)), .bytes(record.spec.serializedBytes()),
                    .int(Int64(shard)), .timestamp(date(record.createdAtUnixMs, or: entry.time)),
                    .timestamp(date(record.updatedAtUnixMs, or: entry.time)), .null,
                ])
            }
            if !puts.isEmpty || !deletes.isEmpty { try await lockAgentsTable(connection) }
            if !puts.isEmpty {
                try await connection.batchInsert(
                    table: "agents",
                    columns: ["id", "kind", "generation", "revision", "labels", "spec", "shard", "created_at", "updated_at", "deleted_at"],
                    rows: puts,
                    onConflict: """
                        (id) DO UPDATE SET kind = EXCLUDED.kind, generation = EXCLUDED.generation, revision = EXCLUDED.revision, \
                        labels = EXCLUDED.labels, spec = EXCLUDED.spec, shard = EXCLUDED.shard, created_at = EXCLUDED.created_at, \
                        updated_at = EXCLUDED.updated_at, deleted_at = NULL WHERE agents.revision < EXCLUDED.revision
                        """)
            }
            if !deletes.isEmpty {
                try await connection.batchInsert(
                    table: "agents", columns: ["id", "revision", "shard", "deleted_at"], rows: deletes,
                    onConflict: "(id) DO UPDATE SET revision = EXCLUDED.revision, deleted_at = EXCLUDED.deleted_at WHERE agents.revision < EXCLUDED.revision")
            }
        }
    }

    static func status(subjects: Subjects, shardMap: ShardMap, logger: Logger) -> PostgresMirror.Feed {
        let bucket = subjects.statusBucket
        let prefix = Subjects.keyValuePrefix(bucket: bucket)
        return PostgresMirror.Feed(
            name: "status", stream: Subjects.keyValueStream(bucket: bucket), consumer: subjects.registryStatusMirrorConsumer,
            filter: Subjects.keyValueAll(bucket: bucket)
        ) { messages, connection in
            var rows: [[PostgresValue]] = []
            for entry in latestPerKey(messages, prefix: prefix) {
                let shard = (try? AgentID(entry.key)).map { shardMap.shard(of: $0) } ?? 0
                if entry.isDelete {
                    rows.append([.text(entry.key), .null, .null, .int(0), .int(Int64(entry.revision)), .int(Int64(shard))])
                    continue
                }
                guard let record = try? AgentRecord(serializedBytes: entry.message.payload) else {
                    logger.warning("undecodable agent status not mirrored", metadata: ["mesh.agent.id": "\(entry.key)"])
                    continue
                }
                let node = record.placement?.nodeId ?? ""
                rows.append([
                    .text(entry.key), .text(AgentSpecDocument.name(record.status == .unspecified ? .pending : record.status)),
                    node.isEmpty ? .null : .text(node), .int(Int64(record.restartCount)), .int(Int64(entry.revision)), .int(Int64(shard)),
                ])
            }
            guard !rows.isEmpty else { return }
            try await lockAgentsTable(connection)
            try await connection.batchInsert(
                table: "agents", columns: ["id", "status", "node_id", "restart_count", "status_revision", "shard"], rows: rows,
                onConflict: """
                    (id) DO UPDATE SET status = EXCLUDED.status, node_id = EXCLUDED.node_id, restart_count = EXCLUDED.restart_count, \
                    status_revision = EXCLUDED.status_revision WHERE agents.status_revision < EXCLUDED.status_revision
                    """)
        }
    }

    static func timeline(subjects: Subjects, logger: Logger) -> PostgresMirror.Feed {
        PostgresMirror.Feed(
            name: "timeline", stream: subjects.eventsStream, consumer: subjects.registryTimelineConsumer, filter: subjects.agentEventsAll
        ) { messages, connection in
            var rows: [String: [PostgresValue]] = [:]
            for message in messages {
                guard let event = try? Event(serializedBytes: message.payload), !event.id.isEmpty else {
                    logger.warning("undecodable event not recorded", metadata: ["mesh.subject": "\(message.subject)"])
                    continue
                }
                let time = event.timestampUnixMs > 0 ? Date(timeIntervalSince1970: Double(event.timestampUnixMs) / 1000) : message.metadata?.timestamp ?? Date()
                rows[event.id] = [
                    .text(event.id), .text(event.agentId), .text(event.type), event.nodeId.isEmpty ? .null : .text(event.nodeId),
                    .text(event.reason), .text(JSONText.string(event.attributes)), .timestamp(time),
                ]
            }
            guard !rows.isEmpty else { return }
            try await connection.batchInsert(
                table: "agent_events", columns: ["event_id", "agent_id", "type", "node_id", "reason", "attributes", "occurred_at"],
                rows: rows.keys.sorted().map { rows[$0]! }, onConflict: "(event_id) DO NOTHING")
        }
    }

    /// One KV stream message reduced to what the mirror needs.
    struct KeyEntry {
        var key: String
        var revision: UInt64
        var isDelete: Bool
        var time: Date
        var message: JetStreamMessage
    }

    /// The newest entry per key of a batch (one row per key and statement).
    static func latestPerKey(_ messages: [JetStreamMessage], prefix: String) -> [KeyEntry] {
        var latest: [String: KeyEntry] = [:]
        for message in messages {
            guard message.subject.hasPrefix(prefix), let metadata = message.metadata else { continue }
            let key = String(message.subject.dropFirst(prefix.count))
            let operation = message.headers[MeshHeader.keyValueOperation]
            let entry = KeyEntry(
                key: key, revision: metadata.streamSequence,
                isDelete: operation == MeshHeader.keyValueDelete || operation == MeshHeader.keyValuePurge, time: metadata.timestamp,
                message: message)
            if let current = latest[key], current.revision >= entry.revision { continue }
            latest[key] = entry
        }
        return latest.keys.sorted().map { latest[$0]! }
    }

    static func date(_ unixMs: Int64, or fallback: Date) -> Date {
        unixMs > 0 ? Date(timeIntervalSince1970: Double(unixMs) / 1000) : fallback
    }
}
