public import ArgumentParser
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import MeshClient
import MeshCore
import Nats
public import MeshRuntime
public import ServiceLifecycle

/// `mesh-gateway`: the HTTP/JSON API of the mesh, with API-key auth, rate limits and an
/// audit log.
///
/// - **API** (``GatewayRoutes``, one route table; the OpenAPI document at `/openapi.json`):
///   agents (list with label selector and cursor, create, get, update with compare-and-set,
///   delete), actions, the agent timeline, durable tasks and the dead-letter queue, nodes (list, drain), API keys, live events over
///   SSE or WebSocket (``LiveEvents``; the upgrade in `LiveEventsWebSocket.swift`), the dashboard at `/` (``Dashboard``); `/health`, `/ready`, `/metrics`.
/// - **Auth** (``APIKeyStore``): `Authorization: Bearer <key>`; keys stored as SHA-256 in
///   PostgreSQL `api_keys` with roles viewer < operator < admin.
/// - **Limits**: per-key token bucket (``RateLimiter``), body size, request timeout, NATS
///   down → 503 at once.
/// - **Audit** (``AuditLog``): every auth failure and every mutation to `audit_log`, in batches.
///
/// Stateless: run as many as needed behind a load balancer.
public enum Gateway {
    /// How the host describes and starts this service.
    public static let descriptor = ServiceDescriptor(
        name: .gateway, description: "HTTP API, auth, rate limits and audit log", usesPostgres: true,
        migrations: GatewaySchema.migrations)

    /// The service's own long-running parts: the HTTP server and the audit writer.
    /// - Throws: when the service has no Postgres store or NATS JetStream cannot be used.
    public static func services(context: ServiceContext, options: GatewayOptions) async throws -> [any Service] {
        guard let store = context.store else { throw MeshError(.internalError, "the gateway needs PostgreSQL (--postgres-url)") }
        let js = try context.nats.jetStream()
        let subjects = context.subjects
        let shardMap = try await StartupRetry.run("read the cluster's shard map", logger: context.logger) {
            try await BlockingIO.run { try ClusterResources.readShardMap(js, subjects: subjects) }
        }
        let actions = try await StartupRetry.run("watch the shard table", logger: context.logger) {
            try await ActionClient.watchingShards(connection: context.nats, subjects: subjects, shardMap: shardMap)
        }
        let keys = APIKeyStore(store: store, cacheTTL: .milliseconds(options.keyCacheTTLMs))
        if !options.bootstrapKeyFile.isEmpty {
            let file = options.bootstrapKeyFile
            _ = try await StartupRetry.run("bootstrap admin key", logger: context.logger) {
                try await keys.bootstrapAdmin(file: file, logger: context.logger)
            }
        }
        let audit = AuditLog(store: store, logger: context.logger)
        let api = GatewayAPI(
            context: context, options: options, store: store, keys: keys, audit: audit,
            registry: RegistryClient(connection: context.nats, subjects: subjects, shardMap: shardMap),
            readiness: RegistryClient(connection: context.nats, subjects: subjects, shardMap: shardMap, timeout: .seconds(1)),
            actions: actions,
            supervisor: SupervisorClient(connection: context.nats, subjects: subjects),
            tasks: try TaskClient(connection: context.nats, subjects: subjects, shardMap: shardMap),
            live: LiveEvents(
                js: js, subjects: subjects, logger: context.logger, bufferCapacity: options.liveBufferEvents,
                slowClientTimeout: .milliseconds(options.slowClientTimeoutMs)),
            limiter: options.rateLimit > 0 ? RateLimiter(ratePerSecond: Double(options.rateLimit), burst: Double(options.rateBurst)) : nil)
        // HTTP/1.1 with the WebSocket upgrade of /api/v1/events decided by the API's own gate.
        // The health probe and actions are answered by FastPathHandler before the router.
        let server = HTTPServerBuilder.http1WebSocketUpgrade(
            configuration: .init(http1: .init(additionalChannelHandlers: [FastPathHandler(api: api)]), ws: GatewayAPI.webSocketConfiguration)
        ) { head, channel, _ in
            await api.shouldUpgrade(head, channel: channel)
        }
        let app = Application(
            router: api.router(),
            server: server,
            configuration: ApplicationConfiguration(address: .hostname(options.host, port: options.port), serverName: GatewayAPI.serverName),
            onServerRunning: { channel in
                context.logger.info("HTTP API listening", metadata: ["mesh.http.address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: context.logger)
        // Listed first, so it stops last: the shard watch ends after the HTTP server, before
        // the process closes its NATS connection and exits (a watch thread still inside
        // cnats at exit crashed the process).
        return [StopOnShutdown { actions.stop() }, audit, app]
    }
}

/// Runs `action` once graceful shutdown begins.
struct StopOnShutdown: Service {
    let action: @Sendable () -> Void

    func run() async throws {
        try? await gracefulShutdown()
        action()
    }
}

/// The gateway's own options, from flags or `MESH_GATEWAY_*` environment variables.
///
/// | flag | environment | default |
/// |---|---|---|
/// | `--host` | `MESH_GATEWAY_HOST` | `127.0.0.1` |
/// | `--port` | `MESH_GATEWAY_PORT` | `8080` |
/// | `--request-timeout-ms` | `MESH_GATEWAY_REQUEST_TIMEOUT_MS` | `15000` (→ 504) |
/// | `--action-timeout-ms` | `MESH_GATEWAY_ACTION_TIMEOUT_MS` | `5000` (default `timeout_ms` of an action) |
/// | `--max-body-bytes` | `MESH_GATEWAY_MAX_BODY_BYTES` | `1048576` (→ 413) |
/// | `--rate-limit` | `MESH_GATEWAY_RATE_LIMIT` | `1000` requests/s per key; `0` disables |
/// | `--rate-burst` | `MESH_GATEWAY_RATE_BURST` | `2000` |
/// | `--key-cache-ttl-ms` | `MESH_GATEWAY_KEY_CACHE_TTL_MS` | `5000` |
/// | `--live-buffer-events` | `MESH_GATEWAY_LIVE_BUFFER_EVENTS` | `1024`: events queued per live client (SSE or WebSocket) |
/// | `--slow-client-timeout-ms` | `MESH_GATEWAY_SLOW_CLIENT_TIMEOUT_MS` | `10000`: a live client whose queue stays full this long is disconnected |
/// | `--bootstrap-key-file` | `MESH_GATEWAY_BOOTSTRAP_KEY_FILE` | empty: when set and no admin key exists, create one and write its secret there (0600) |
public struct GatewayOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("host"), help: "Address the HTTP API binds (env MESH_GATEWAY_HOST).")
    public var host: String = MeshEnvironment.string("MESH_GATEWAY_HOST") ?? "127.0.0.1"

    @Option(name: .customLong("port"), help: "Port of the HTTP API (env MESH_GATEWAY_PORT).")
    public var port: Int = MeshEnvironment.int("MESH_GATEWAY_PORT", 8080)

    @Option(name: .customLong("request-timeout-ms"), help: "Longest a request may take before 504, in ms (env MESH_GATEWAY_REQUEST_TIMEOUT_MS).")
    public var requestTimeoutMs: Int = MeshEnvironment.int("MESH_GATEWAY_REQUEST_TIMEOUT_MS", 15_000)

    @Option(name: .customLong("action-timeout-ms"), help: "Default deadline of an action, in ms (env MESH_GATEWAY_ACTION_TIMEOUT_MS).")
    public var actionTimeoutMs: Int = MeshEnvironment.int("MESH_GATEWAY_ACTION_TIMEOUT_MS", 5_000)

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body before 413 (env MESH_GATEWAY_MAX_BODY_BYTES).")
    public var maxBodyBytes: Int = MeshEnvironment.int("MESH_GATEWAY_MAX_BODY_BYTES", 1 << 20)

    @Option(name: .customLong("rate-limit"), help: "Requests per second per API key; 0 disables (env MESH_GATEWAY_RATE_LIMIT).")
    public var rateLimit: Int = MeshEnvironment.int("MESH_GATEWAY_RATE_LIMIT", 1_000)

    @Option(name: .customLong("rate-burst"), help: "Requests a key may send at once (env MESH_GATEWAY_RATE_BURST).")
    public var rateBurst: Int = MeshEnvironment.int("MESH_GATEWAY_RATE_BURST", 2_000)

    @Option(name: .customLong("key-cache-ttl-ms"), help: "How long a key lookup is cached, in ms (env MESH_GATEWAY_KEY_CACHE_TTL_MS).")
    public var keyCacheTTLMs: Int = MeshEnvironment.int("MESH_GATEWAY_KEY_CACHE_TTL_MS", 5_000)

    @Option(name: .customLong("live-buffer-events"), help: "Events queued per live event client (env MESH_GATEWAY_LIVE_BUFFER_EVENTS).")
    public var liveBufferEvents: Int = MeshEnvironment.int("MESH_GATEWAY_LIVE_BUFFER_EVENTS", 1_024)

    @Option(
        name: .customLong("slow-client-timeout-ms"),
        help: "A live event client whose queue stays full this long is disconnected, in ms (env MESH_GATEWAY_SLOW_CLIENT_TIMEOUT_MS).")
    public var slowClientTimeoutMs: Int = MeshEnvironment.int("MESH_GATEWAY_SLOW_CLIENT_TIMEOUT_MS", 10_000)

    @Option(name: .customLong("bootstrap-key-file"), help: "Create an admin key when none exists and write its secret to this file (env MESH_GATEWAY_BOOTSTRAP_KEY_FILE).")
    public var bootstrapKeyFile: String = MeshEnvironment.string("MESH_GATEWAY_BOOTSTRAP_KEY_FILE") ?? ""

    public init() {}

    public func validate() throws {
        let names = [
            "MESH_GATEWAY_PORT", "MESH_GATEWAY_REQUEST_TIMEOUT_MS", "MESH_GATEWAY_ACTION_TIMEOUT_MS", "MESH_GATEWAY_MAX_BODY_BYTES",
            "MESH_GATEWAY_RATE_LIMIT", "MESH_GATEWAY_RATE_BURST", "MESH_GATEWAY_KEY_CACHE_TTL_MS", "MESH_GATEWAY_LIVE_BUFFER_EVENTS",
            "MESH_GATEWAY_SLOW_CLIENT_TIMEOUT_MS",
        ]
        let malformed = names.filter { name in MeshEnvironment.string(name).map { Int($0) == nil } ?? false }
        if !malformed.isEmpty { throw ValidationError("environment variable(s) \(malformed.joined(separator: ", ")) must be integers") }
        guard !host.isEmpty else { throw ValidationError("--host must not be empty") }
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard (100...600_000).contains(requestTimeoutMs) else { throw ValidationError("--request-timeout-ms must be in 100...600000") }
        guard (1...600_000).contains(actionTimeoutMs) else { throw ValidationError("--action-timeout-ms must be in 1...600000") }
        guard (1_024...(256 << 20)).contains(maxBodyBytes) else { throw ValidationError("--max-body-bytes must be in 1024...268435456") }
        guard (0...1_000_000).contains(rateLimit) else { throw ValidationError("--rate-limit must be in 0...1000000") }
        guard (1...10_000_000).contains(rateBurst) else { throw ValidationError("--rate-burst must be in 1...10000000") }
        guard (0...600_000).contains(keyCacheTTLMs) else { throw ValidationError("--key-cache-ttl-ms must be in 0...600000") }
        guard (1...1_000_000).contains(liveBufferEvents) else { throw ValidationError("--live-buffer-events must be in 1...1000000") }
        guard (100...600_000).contains(slowClientTimeoutMs) else { throw ValidationError("--slow-client-timeout-ms must be in 100...600000") }
    }
}
