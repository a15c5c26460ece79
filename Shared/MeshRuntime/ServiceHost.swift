public import Logging
public import MeshCore
import MeshProto
import Metrics
public import Nats
public import NatsMicro
import Prometheus
public import ServiceLifecycle
public import Store
import UnixSignals
public import Foundation

/// What a service is, for the host that runs it.
public struct ServiceDescriptor: Sendable {
    /// The service's name (discovery, logs, metric subjects).
    public var name: ServiceName
    /// One line for `$SRV.INFO`.
    public var description: String
    /// Whether the service owns data in PostgreSQL (connects, migrates at start).
    public var usesPostgres: Bool
    /// Schema migrations applied at start under an advisory lock.
    public var migrations: [Migration]
    /// PostgreSQL connections the service's parts may use at once (its writers and
    /// queries); default 4.
    public var postgresPoolSize: Int
    /// Whether the service's NATS subscriptions share cnats' pool of delivery threads
    /// (``NatsOptions/useGlobalMessageDelivery``, 2 threads) instead of one thread each:
    /// for services with many subscriptions on a hot path (the worker's per-shard ones).
    public var sharedDeliveryThreads: Bool

    public init(
        name: ServiceName, description: String, usesPostgres: Bool = false, migrations: [Migration] = [], postgresPoolSize: Int = 4,
        sharedDeliveryThreads: Bool = false
    ) {
        self.name = name
        self.description = description
        self.usesPostgres = usesPostgres
        self.migrations = migrations
        self.postgresPoolSize = postgresPoolSize
        self.sharedDeliveryThreads = sharedDeliveryThreads
    }
}

/// Everything a running service shares with its parts: identity, connections, metrics.
public final class ServiceContext: Sendable {
    public let descriptor: ServiceDescriptor
    public let options: CommonOptions
    public let instanceID: NodeID
    public let subjects: Subjects
    public let logger: Logger
    public let nats: NatsConnection
    public let micro: MicroService
    /// The Postgres pool, when the service uses Postgres.
    public let store: Store?
    public let startedAt: Date
    /// What `/metrics` serves (the process's registry unless the service installs its own).
    public let metricsExposition = MetricsExpositionHook()
    /// Whether the process's task pool still runs tasks (`/health` answers 503 when not).
    public let liveness: PoolLiveness

    init(
        descriptor: ServiceDescriptor, options: CommonOptions, instanceID: NodeID, subjects: Subjects, logger: Logger,
        nats: NatsConnection, micro: MicroService, store: Store?, startedAt: Date
    ) {
        self.descriptor = descriptor
        self.options = options
        self.instanceID = instanceID
        self.subjects = subjects
        self.logger = logger
        self.nats = nats
        self.micro = micro
        self.store = store
        self.startedAt = startedAt
        self.liveness = PoolLiveness(logger: logger)
    }
}

/// Runs a mesh service process: JSON logging, metrics (Prometheus + snapshots), the NATS
/// connection (retried until the server is there), Postgres with migrations when the
/// service owns data, NATS-micro discovery, a metric snapshot on
/// `<prefix>.metrics.<service>.<instance>` every `--snapshot-interval-ms`, an optional
/// `/metrics` + `/health` port, and graceful shutdown on SIGTERM/SIGINT (services stop,
/// discovery stops, NATS drains for at most 500 ms).
///
/// ```swift
/// try await ServiceHost.run(descriptor, options: options) { context in
///     [MyService(context: context)]
/// }
/// ```
public enum ServiceHost {
    /// Runs the service until a shutdown signal; returns after a clean shutdown.
    /// - Parameter makeServices: builds the service's own long-running parts.
    public static func run(
        _ descriptor: ServiceDescriptor, options: CommonOptions,
        makeServices: @Sendable (ServiceContext) async throws -> [any Service]
    ) async throws {
        let instanceID = options.resolvedInstanceID(for: descriptor.name)
        let observability = Observability.bootstrap(options: options)
        let logger = {
            var logger = Logger(label: descriptor.name.loggerLabel)
            logger[metadataKey: "mesh.instance"] = "\(instanceID)"
            return logger
        }()
        let subjects = try Subjects(prefix: options.prefix)
        let startedAt = Date()
        logger.info(
            "starting", metadata: ["mesh.version": "\(MeshVersion.current)", "mesh.nats.servers": "\(options.natsServers.count)"])

        // Connecting may wait for NATS or Postgres to come up; a signal meanwhile ends the process.
        let connections = try await untilSignal(logger: logger) {
            let nats = try await connectNATS(
                options: options, name: "\(descriptor.name.rawValue).\(instanceID)", sharedDeliveryThreads: descriptor.sharedDeliveryThreads,
                logger: logger)
            let store = descriptor.usesPostgres ? try await openStore(options: options, descriptor: descriptor, logger: logger) : nil
            return (nats, store)
        }
        guard let (nats, store) = connections else {
            logger.info("stopped before start")
            return
        }

        let micro = try MicroService(
            connection: nats,
            config: MicroServiceConfig(
                name: descriptor.name.rawValue, version: MeshVersion.current, id: instanceID.rawValue,
                description: descriptor.description,
                metadata: ["mesh.prefix": subjects.prefix, "mesh.instance": instanceID.rawValue]),
            logger: logger)
        let context = ServiceContext(
            descriptor: descriptor, options: options, instanceID: instanceID, subjects: subjects, logger: logger, nats: nats,
            micro: micro, store: store, startedAt: startedAt)

        var services: [any Service] = [
            context.liveness,
            ConnectionEventLogger(nats: nats, logger: logger),
            SnapshotPublisher(context: context, observability: observability).service,
        ]
        if options.metricsPort > 0 {
            services.append(
                MetricsHTTPServer(
                    host: options.metricsHost, port: options.metricsPort, logger: logger,
                    metrics: { context.metricsExposition.render(fallback: observability.prometheusExposition) },
                    health: { nats.isConnected && context.liveness.isLive }))
        }
        services += try await makeServices(context)

        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info("started", metadata: ["mesh.services": "\(services.count)"])
        var failure: (any Error)?
        do { try await group.run() } catch { failure = error }

        micro.stop()
        do { try await nats.drain(timeout: .milliseconds(500)) } catch { nats.close() }
        store?.close()
        if let failure {
            logger.error("stopped after a failure", metadata: ["error": "\(failure)"])
            throw failure
        }
        logger.info("stopped")
    }

    /// Connects to NATS, retrying with capped backoff until it succeeds.
    static func connectNATS(options: CommonOptions, name: String, sharedDeliveryThreads: Bool, logger: Logger) async throws
        -> NatsConnection
    {
        var natsOptions = NatsOptions()
        natsOptions.useGlobalMessageDelivery = sharedDeliveryThreads
        natsOptions.servers = options.natsServers
        natsOptions.name = name
        natsOptions.coalescingLink = options.usesCoalescingLink
        natsOptions.user = MeshEnvironment.string("MESH_NATS_USER")
        natsOptions.password = MeshEnvironment.string("MESH_NATS_PASSWORD")
        natsOptions.token = MeshEnvironment.string("MESH_NATS_TOKEN")
        let connection = try await StartupRetry.run("connect to NATS", logger: logger) {
            try await NatsConnection.connect(natsOptions, logger: logger)
        }
        logger.info("connected to NATS")
        return connection
    }

    /// Opens the Postgres pool and applies migrations, retrying until Postgres answers.
    static func openStore(options: CommonOptions, descriptor: ServiceDescriptor, logger: Logger) async throws -> Store {
        var configuration = StoreConfiguration(connectionString: options.postgresURL, poolSize: descriptor.postgresPoolSize)
        configuration.applicationName = descriptor.name.rawValue
        let store = Store(configuration: configuration, logger: logger)
        // A migration that fails is a bug or a broken database, not an outage: no retry.
        try await StartupRetry.run(
            "connect to Postgres and migrate", logger: logger, retryIf: { ($0 as? StoreError)?.code != .migrationFailed }
        ) {
            try await store.ping()
            try await store.migrate(descriptor.migrations)
        }
        logger.info("connected to Postgres")
        return store
    }

    /// Runs `body` until it finishes or SIGTERM/SIGINT arrives (then returns nil).
    static func untilSignal<T: Sendable>(logger: Logger, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                    logger.info("signal received while starting", metadata: ["mesh.signal": "\(signal)"])
                    return nil
                }
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}

/// Logs the NATS connection's disconnect/reconnect/error events and counts them.
struct ConnectionEventLogger: Service {
    let nats: NatsConnection
    let logger: Logger

    func run() async throws {
        let reconnects = Counter(label: "mesh_nats_reconnects_total")
        let disconnects = Counter(label: "mesh_nats_disconnects_total")
        let slowConsumers = Counter(label: "mesh_nats_slow_consumers_total")
        let events = nats.events
        await cancelWhenGracefulShutdown {
            for await event in events {
                switch event {
                case .disconnected:
                    disconnects.increment()
                    logger.warning("NATS disconnected")
                case .reconnected:
                    reconnects.increment()
                    logger.info("NATS reconnected")
                case .closed:
                    logger.info("NATS connection closed")
                    return
                case .error(let error):
                    if error.code == .slowConsumer { slowConsumers.increment() }
                    logger.warning("NATS error", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
