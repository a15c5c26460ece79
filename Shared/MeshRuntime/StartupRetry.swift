public import Logging
import ServiceLifecycle

/// Retries a start-up step (connecting to NATS or Postgres, creating streams, buckets or
/// consumers) until it succeeds, so a server that is not up yet, or a JetStream API call
/// that times out on a busy server, delays a service instead of ending it. Backs off from
/// 100 ms to 2 s; logs the first failure and every tenth. Gives up when the task is
/// cancelled or the service shuts down, or when `retryIf` rejects the error (rethrown).
///
/// ```swift
/// let resources = try await StartupRetry.run("cluster resources", logger: logger) {
///     try await ClusterResources.ensure(js, subjects: subjects, replicas: 1, shardCount: 64, logger: logger)
/// }
/// ```
public enum StartupRetry {
    public static func run<T>(
        _ what: String, logger: Logger, retryIf: (any Error) -> Bool = { _ in true }, _ step: () async throws -> T
    ) async throws -> T {
        var delay = Duration.milliseconds(100)
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await step()
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully || !retryIf(error) { throw error }
                if attempt == 1 || attempt % 10 == 0 {
                    logger.warning("start-up step failed; retrying", metadata: ["mesh.step": "\(what)", "mesh.attempts": "\(attempt)", "error": "\(error)"])
                }
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}
