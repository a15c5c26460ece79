public import ServiceLifecycle

/// A service that runs `tick` every `interval` until graceful shutdown (first tick at once).
/// A thrown error is handed to `onError` and the loop goes on: periodic duties such as
/// heartbeats and snapshots must survive a NATS outage.
public struct PeriodicService: Service {
    private let interval: Duration
    private let tick: @Sendable () async throws -> Void
    private let onError: @Sendable (any Error) -> Void

    public init(every interval: Duration, onError: @escaping @Sendable (any Error) -> Void, tick: @escaping @Sendable () async throws -> Void) {
        self.interval = interval
        self.tick = tick
        self.onError = onError
    }

    public func run() async throws {
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do { try await tick() } catch { onError(error) }
            next = next.advanced(by: interval)
            if next < clock.now { next = clock.now }
            let deadline = next
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(until: deadline, clock: clock) }
            } catch { return }
        }
    }
}
