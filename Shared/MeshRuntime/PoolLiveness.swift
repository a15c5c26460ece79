public import Logging
import MeshCore
import Metrics
public import ServiceLifecycle
import Synchronization

/// Whether the process's Swift concurrency pool still runs tasks: a task records the time
/// every ``interval``, and the process is live while that record is younger than
/// ``stallAfter``.
///
/// A process whose pool is wedged — every thread blocked, a deadlock — keeps its sockets:
/// NATS still hands it requests (a worker's queue-group share, answered by nobody) and its
/// `/health` port, served on SwiftNIO's own threads, still answers. So `/health` (the
/// metrics port of every service, and the gateway's) answers 503 while the pool is
/// stalled, and an orchestrator's liveness probe can restart the process. A stall that
/// ends is logged and counted (`mesh_task_pool_stalls_total`).
///
/// ```swift
/// let liveness = PoolLiveness(logger: logger)      // a Service: run it in the service group
/// liveness.isLive                                  // false after 5 s without a tick
/// ```
public final class PoolLiveness: Service, Sendable {
    /// How often the pool is sampled.
    public static let defaultInterval = Duration.milliseconds(250)
    /// How long without a sample makes the process not live.
    public static let defaultStallAfter = Duration.seconds(5)

    public let interval: Duration
    public let stallAfter: Duration
    private let logger: Logger
    private let origin = ContinuousClock.now
    /// Nanoseconds since `origin` of the last sample.
    private let lastTick = Atomic<Int64>(0)
    private let stalls = Counter(label: "mesh_task_pool_stalls_total")

    public init(interval: Duration = defaultInterval, stallAfter: Duration = defaultStallAfter, logger: Logger) {
        self.interval = interval
        self.stallAfter = stallAfter
        self.logger = logger
    }

    /// Samples until graceful shutdown or cancellation.
    public func run() async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = (ContinuousClock.now - origin).totalNanoseconds
            let gap = Duration.nanoseconds(now - lastTick.exchange(now, ordering: .relaxed))
            if gap > stallAfter + interval {
                stalls.increment()
                logger.warning("the task pool ran nothing for a while; /health answered 503 meanwhile", metadata: ["mesh.stall_ms": "\(gap.totalMilliseconds)"])
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) } } catch { return }
        }
    }

    /// How long the pool has run no sample, as of `now`.
    public func silence(at now: ContinuousClock.Instant = .now) -> Duration {
        .nanoseconds((now - origin).totalNanoseconds - lastTick.load(ordering: .relaxed))
    }

    /// False while the pool has run no sample for longer than ``stallAfter`` (also before
    /// the first sample, once ``stallAfter`` has passed since start).
    public var isLive: Bool { silence() <= stallAfter }
}
