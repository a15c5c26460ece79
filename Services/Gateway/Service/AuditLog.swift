public import Foundation
public import Logging
import Metrics
public import ServiceLifecycle
public import Store
import Synchronization

/// One audit record: who (key id and name, never the secret), what (method and route),
/// the target, when, the outcome and the HTTP status.
public struct AuditEntry: Sendable, Hashable {
    public var occurredAt: Date
    public var keyID: String?
    public var keyName: String?
    /// `METHOD /route/template`.
    public var action: String
    /// The id acted on (agent id, key id), when there is one.
    public var target: String?
    /// `ok`, `failed`, `unauthenticated`, `forbidden`, `rate_limited`.
    public var outcome: String
    public var status: Int
    public var requestID: String?
}

/// Writes ``AuditEntry``s to `audit_log` off the request path: requests append to a bounded
/// in-memory queue; this service inserts them in batches (≤ 500 rows, every 250 ms). A
/// full queue drops new entries and counts them in `mesh_gateway_audit_dropped_total`
/// (logged); a failed insert is retried on the next tick while the queue has room.
public final class AuditLog: Service, Sendable {
    /// Most entries waiting to be written.
    public let capacity: Int
    private let store: Store
    private let logger: Logger
    private let queue = Mutex<[AuditEntry]>([])
    private let dropped = Counter(label: "mesh_gateway_audit_dropped_total")
    private let written = Counter(label: "mesh_gateway_audit_written_total")
    private let interval: Duration

    public init(store: Store, logger: Logger, capacity: Int = 50_000, interval: Duration = .milliseconds(250)) {
        self.store = store
        self.logger = logger
        self.capacity = capacity
        self.interval = interval
    }

    /// Queues an entry (never blocks).
    public func record(_ entry: AuditEntry) {
        let accepted = queue.withLock { queue -> Bool in
            guard queue.count < capacity else { return false }
            queue.append(entry)
            return true
        }
        if !accepted { dropped.increment() }
    }

    /// Entries waiting.
    public var pending: Int { queue.withLock { $0.count } }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            await flush()
        }
        await flush()
    }

    /// Writes what is queued, in batches of ≤ 500.
    public func flush() async {
        while true {
            let batch = queue.withLock { queue -> [AuditEntry] in
                let batch = Array(queue.prefix(500))
                queue.removeFirst(batch.count)
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                try await store.batchInsert(
                    table: "audit_log",
                    columns: ["occurred_at", "key_id", "key_name", "action", "target", "outcome", "status", "request_id"],
                    rows: batch.map { entry in
                        [
                            .timestamp(entry.occurredAt), entry.keyID.map { .text($0) } ?? .null, entry.keyName.map { .text($0) } ?? .null,
                            .text(entry.action), entry.target.map { .text($0) } ?? .null, .text(entry.outcome), .int(Int64(entry.status)),
                            entry.requestID.map { .text($0) } ?? .null,
                        ]
                    })
                written.increment(by: batch.count)
            } catch {
                // Put the batch back in front (within the bound) and try again next tick.
                let lost = queue.withLock { queue -> Int in
                    let room = max(0, capacity - queue.count)
                    queue.insert(contentsOf: batch.prefix(room), at: 0)
                    return batch.count - min(room, batch.count)
                }
                if lost > 0 { dropped.increment(by: lost) }
                logger.warning("audit log write failed; will retry", metadata: ["error": "\(error)", "mesh.audit.pending": "\(pending)"])
                return
            }
        }
    }
}
