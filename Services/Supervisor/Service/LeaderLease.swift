import Foundation
import MeshCore
import Nats

/// Leader election by a lease in KV `mesh_leases` (a bucket whose entries expire after the
/// lease TTL unless renewed).
///
/// - Acquire: `create(key)` succeeds only when no live lease exists; the KV revision of
///   that write is the leader's **fencing epoch** (strictly increasing across leaders).
/// - Renew: `update(key, expectedRevision:)` every `ttl / 4`; a failed compare-and-set means
///   someone else holds the lease now: step down at once.
/// - A leader that has not renewed successfully for `ttl - margin` considers itself
///   standby even before it learns of a successor, so two leaders never act at the same
///   time as long as clocks run at the same rate.
/// - Standbys retry `create` on every tick, so a dead leader is replaced within
///   `ttl + tick`; a leader that stops cleanly deletes the lease for an immediate handover.
final class LeaderLease: @unchecked Sendable {
    // @unchecked: all mutable state is touched only from the supervisor's single loop task.
    enum State: Equatable {
        case leader(epoch: UInt64)
        case standby(holder: String?)
    }

    private let kv: KeyValue
    private let key: String
    private let holder: String
    private let ttl: Duration
    private var revision: UInt64 = 0
    private var renewedAt: ContinuousClock.Instant?
    private(set) var state: State = .standby(holder: nil)

    init(kv: KeyValue, key: String, holder: NodeID, ttl: Duration) {
        self.kv = kv
        self.key = key
        self.holder = holder.rawValue
        self.ttl = ttl
    }

    /// How long a leader may go without a successful renewal before it stops acting.
    var validity: Duration { ttl * 3 / 4 }

    /// Acquires, renews or gives up the lease as due; returns the state to act on.
    func tick(now: ContinuousClock.Instant) -> State {
        switch state {
        case .leader(let epoch):
            if let renewedAt, now - renewedAt < ttl / 4 { return state }
            do {
                revision = try kv.update(key, Array(holder.utf8), expectedRevision: revision)
                renewedAt = now
                return state
            } catch {
                if let renewedAt, now - renewedAt < validity, error.code != .wrongLastRevision, error.code != .notFound {
                    return .leader(epoch: epoch)  // transient: keep acting while the lease is surely ours
                }
                state = .standby(holder: nil)
                return state
            }
        case .standby:
            do {
                revision = try kv.create(key, Array(holder.utf8))
                renewedAt = now
                state = .leader(epoch: revision)
            } catch {
                let current = (try? kv.get(key)).flatMap { $0.map { String(decoding: $0.value, as: UTF8.self) } }
                state = .standby(holder: current)
            }
            return state
        }
    }

    /// Gives the lease up (clean shutdown), so a standby takes over on its next tick.
    func release() {
        guard case .leader = state else { return }
        // Only delete our own lease: a successor's would be a different revision.
        if let entry = try? kv.get(key), entry.revision == revision { try? kv.delete(key) }
        state = .standby(holder: nil)
    }
}
