import Foundation
import LocalServers

/// Facts about the machine a test runs on, and the rule for missing external binaries:
/// locally a test that needs a missing `nats-server` or PostgreSQL may skip with a printed
/// reason; under `CI=true` it must fail instead (the harness then throws when starting).
public enum TestEnvironment {
    /// `true` when the `CI` environment variable is `true` or `1`.
    public static var isCI: Bool {
        let value = ProcessInfo.processInfo.environment["CI"]?.lowercased()
        return value == "true" || value == "1"
    }

    /// Whether tests needing `nats-server` should run: the binary exists, or we are in CI
    /// (where a missing binary must fail loudly rather than skip).
    public static var natsAvailable: Bool {
        if LocalNatsServer.binaryPath != nil || isCI { return true }
        print("skipping: nats-server not found on PATH (set MESH_NATS_SERVER or run Deploy/dev/setup.sh)")
        return false
    }

    /// Whether tests needing PostgreSQL should run: the server binaries exist, or we are in
    /// CI (where a missing installation must fail loudly rather than skip).
    public static var postgresAvailable: Bool {
        if LocalPostgres.binDirectory != nil || isCI { return true }
        print("skipping: PostgreSQL not found (set MESH_PG_BIN or install postgresql)")
        return false
    }

    /// Finds an executable on `PATH`.
    public static func which(_ name: String) -> String? { LocalHost.which(name) }

    /// A free TCP port on 127.0.0.1.
    public static func freePort() throws -> Int { try LocalHost.freePort() }

    /// `true` once something accepts TCP connections on 127.0.0.1:`port`.
    public static func isListening(port: Int) -> Bool { LocalHost.isListening(port: port) }

    /// Makes a fresh temporary directory `…/mesh-<prefix>-XXXXXX`.
    public static func makeTempDirectory(prefix: String) throws -> String { try LocalHost.makeTempDirectory(prefix: prefix) }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    public static func waitUntil(timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
        try await LocalHost.waitUntil(timeout: timeout, condition)
    }
}

/// An error of the test harness itself.
public typealias HarnessError = LocalServerError
