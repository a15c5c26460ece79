public import ArgumentParser
import Foundation

/// Reads `MESH_*` environment variables, the second source of configuration after flags.
///
/// Precedence everywhere: command-line flag, then environment variable, then the default
/// stated in the option's help.
public enum MeshEnvironment {
    /// The value of `name`, or nil when unset or empty.
    public static func string(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// The integer value of `name`, or `fallback` when unset. A set but malformed value is
    /// reported by ``CommonOptions/validate()`` rather than silently ignored.
    public static func int(_ name: String, _ fallback: Int) -> Int {
        string(name).flatMap(Int.init) ?? fallback
    }

    static func malformedInts(_ names: [String]) -> [String] {
        names.filter { name in string(name).map { Int($0) == nil } ?? false }
    }
}

/// The log output format.
public enum LogFormat: String, Sendable, ExpressibleByArgument, CaseIterable {
    /// One JSON object per line (the default; what log shippers want).
    case json
    /// Human-readable single lines, for a terminal.
    case text
}

/// Options every mesh service accepts, from flags or `MESH_*` environment variables.
///
/// | flag | environment | default |
/// |---|---|---|
/// | `--nats-url` | `MESH_NATS_URL` | `nats://127.0.0.1:4222` (comma-separated list allowed) |
/// | `--prefix` | `MESH_PREFIX` | `mesh` |
/// | `--instance-id` | `MESH_INSTANCE_ID` | `<service>-<random hex>` |
/// | `--postgres-url` | `MESH_POSTGRES_URL` | `postgresql://mesh@127.0.0.1:5432/mesh` (services that own data) |
/// | `--metrics-port` | `MESH_METRICS_PORT` | `0` (off): serve `/metrics` and `/health` on this port |
/// | `--metrics-host` | `MESH_METRICS_HOST` | `127.0.0.1` |
/// | `--snapshot-interval-ms` | `MESH_SNAPSHOT_INTERVAL_MS` | `2000`: metric snapshot period |
/// | `--js-replicas` | `MESH_JS_REPLICAS` | `1` (streams and buckets created by this process) |
/// | `--shard-count` | `MESH_SHARD_COUNT` | `64` (only when the cluster is created) |
/// | `--log-level` | `MESH_LOG_LEVEL` | `info` |
/// | `--log-format` | `MESH_LOG_FORMAT` | `json` |
/// | `--nats-coalescing-link` | `MESH_NATS_COALESCING_LINK` | `on`: requests, replies and batch acknowledgements go on a second NATS connection whose writes are coalesced under load (`NatsOptions.coalescingLink`); `off`: one connection |
///
/// NATS credentials come only from the environment (`MESH_NATS_USER`, `MESH_NATS_PASSWORD`,
/// `MESH_NATS_TOKEN`) so they never show in a process list; they are never printed.
public struct CommonOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("nats-url"), help: "NATS server URL(s), comma-separated (env MESH_NATS_URL).")
    public var natsURL: String = MeshEnvironment.string("MESH_NATS_URL") ?? "nats://127.0.0.1:4222"

    @Option(name: .customLong("prefix"), help: "Subject prefix of this cluster (env MESH_PREFIX).")
    public var prefix: String = MeshEnvironment.string("MESH_PREFIX") ?? Subjects.defaultPrefix

    @Option(name: .customLong("instance-id"), help: "This instance's id; random when absent (env MESH_INSTANCE_ID).")
    public var instanceID: String = MeshEnvironment.string("MESH_INSTANCE_ID") ?? ""

    @Option(name: .customLong("postgres-url"), help: "libpq connection string or URL (env MESH_POSTGRES_URL).")
    public var postgresURL: String = MeshEnvironment.string("MESH_POSTGRES_URL") ?? "postgresql://mesh@127.0.0.1:5432/mesh"

    @Option(name: .customLong("metrics-port"), help: "Port for /metrics and /health; 0 disables (env MESH_METRICS_PORT).")
    public var metricsPort: Int = MeshEnvironment.int("MESH_METRICS_PORT", 0)

    @Option(name: .customLong("metrics-host"), help: "Address the metrics port binds (env MESH_METRICS_HOST).")
    public var metricsHost: String = MeshEnvironment.string("MESH_METRICS_HOST") ?? "127.0.0.1"

    @Option(name: .customLong("snapshot-interval-ms"), help: "Metric snapshot period in ms (env MESH_SNAPSHOT_INTERVAL_MS).")
    public var snapshotIntervalMs: Int = MeshEnvironment.int("MESH_SNAPSHOT_INTERVAL_MS", 2000)

    @Option(name: .customLong("js-replicas"), help: "Replicas of the mesh's streams and buckets when created: 1 locally, 3 in a cluster (env MESH_JS_REPLICAS).")
    public var jetStreamReplicas: Int = MeshEnvironment.int("MESH_JS_REPLICAS", 1)

    @Option(name: .customLong("shard-count"), help: "Shards of a NEW cluster; an existing cluster keeps its own (env MESH_SHARD_COUNT).")
    public var shardCount: Int = MeshEnvironment.int("MESH_SHARD_COUNT", ShardMap.defaultShardCount)

    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error|critical (env MESH_LOG_LEVEL).")
    public var logLevel: String = MeshEnvironment.string("MESH_LOG_LEVEL") ?? "info"

    @Option(name: .customLong("log-format"), help: "json|text (env MESH_LOG_FORMAT).")
    public var logFormat: LogFormat = MeshEnvironment.string("MESH_LOG_FORMAT").flatMap(LogFormat.init(rawValue:)) ?? .json

    @Option(
        name: .customLong("nats-coalescing-link"),
        help: "on|off: requests, replies and batch acknowledgements on a second NATS connection whose writes are coalesced under load (env MESH_NATS_COALESCING_LINK).")
    public var natsCoalescingLink: String = MeshEnvironment.string("MESH_NATS_COALESCING_LINK") ?? "on"

    /// Whether ``natsCoalescingLink`` is `on`.
    public var usesCoalescingLink: Bool { natsCoalescingLink == "on" }

    public init() {}

    public func validate() throws {
        let malformed = MeshEnvironment.malformedInts([
            "MESH_METRICS_PORT", "MESH_SNAPSHOT_INTERVAL_MS", "MESH_JS_REPLICAS", "MESH_SHARD_COUNT",
        ])
        if !malformed.isEmpty { throw ValidationError("environment variable(s) \(malformed.joined(separator: ", ")) must be integers") }
        if let bad = MeshEnvironment.string("MESH_LOG_FORMAT"), LogFormat(rawValue: bad) == nil {
            throw ValidationError("MESH_LOG_FORMAT must be json or text")
        }
        do { _ = try Subjects(prefix: prefix) } catch { throw ValidationError(error.message) }
        if !instanceID.isEmpty { do { _ = try NodeID(instanceID) } catch { throw ValidationError(error.message) } }
        guard (0...65_535).contains(metricsPort) else { throw ValidationError("--metrics-port must be in 0...65535") }
        guard (100...3_600_000).contains(snapshotIntervalMs) else { throw ValidationError("--snapshot-interval-ms must be in 100...3600000") }
        guard [1, 3, 5].contains(jetStreamReplicas) else { throw ValidationError("--js-replicas must be 1, 3 or 5") }
        guard (1...ShardMap.maxShardCount).contains(shardCount) else {
            throw ValidationError("--shard-count must be in 1...\(ShardMap.maxShardCount)")
        }
        guard ["on", "off"].contains(natsCoalescingLink) else { throw ValidationError("--nats-coalescing-link must be on or off") }
        guard LogLevelParser.parse(logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        let servers = natsServers
        guard !servers.isEmpty, servers.allSatisfy({ $0.hasPrefix("nats://") || $0.hasPrefix("tls://") }) else {
            throw ValidationError("--nats-url must be one or more nats:// or tls:// URLs, comma-separated")
        }
    }

    /// The NATS server list.
    public var natsServers: [String] {
        natsURL.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// This instance's id: `--instance-id`, else a random one prefixed with the service's short name.
    public func resolvedInstanceID(for service: ServiceName) -> NodeID {
        // validate() has checked an explicit id already.
        if let id = try? NodeID(instanceID) { return id }
        return NodeID.random(prefix: String(service.rawValue.dropFirst("mesh-".count)))
    }
}
