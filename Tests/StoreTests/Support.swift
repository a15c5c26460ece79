import Foundation
import Logging
import MeshTesting
import Store
import Synchronization
import Testing

/// A fresh PostgreSQL cluster and a store on it, for one test.
struct Fixture {
    let server: PostgresServer
    let store: Store

    static func start(
        poolSize: Int = 4, acquireTimeout: Duration = .seconds(5), healthCheckInterval: Duration? = nil,
        logger: Logger = Logger(label: "mesh.store.test")
    ) async throws -> Fixture {
        let server = try await PostgresServer.start()
        return Fixture(server: server, store: makeStore(server, poolSize: poolSize, acquireTimeout: acquireTimeout,
            healthCheckInterval: healthCheckInterval, logger: logger))
    }

    static func makeStore(
        _ server: PostgresServer, poolSize: Int = 4, acquireTimeout: Duration = .seconds(5), healthCheckInterval: Duration? = nil,
        logger: Logger = Logger(label: "mesh.store.test")
    ) -> Store {
        let configuration = StoreConfiguration(
            connectionString: server.connectionString, poolSize: poolSize, acquireTimeout: acquireTimeout,
            healthCheckInterval: healthCheckInterval, connectTimeout: .seconds(2), applicationName: "mesh-store-tests")
        return Store(configuration: configuration, logger: logger)
    }

    func tearDown() {
        store.close()
        server.stop()
    }
}

/// Runs `body` and returns the `StoreError` it throws (a test failure when it throws none
/// or something else).
func storeError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async -> StoreError? {
    do {
        try await body()
        Issue.record("expected a StoreError, nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as StoreError {
        return error
    } catch {
        Issue.record("expected a StoreError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A log handler that keeps messages, to see what the store logs.
struct CapturingLogHandler: LogHandler {
    final class Storage: Sendable {
        let entries = Mutex<[(Logger.Level, String, Logger.Metadata?)]>([])
        var all: [(Logger.Level, String, Logger.Metadata?)] { entries.withLock { $0 } }
    }
    let storage: Storage
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        storage.entries.withLock { $0.append((event.level, "\(event.message)", event.metadata)) }
    }
}
