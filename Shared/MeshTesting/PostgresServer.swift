#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A throwaway PostgreSQL cluster for a test: `initdb` into a temp directory, the server
/// listening on a free port on 127.0.0.1 and on a unix socket in that directory, with
/// durability switched off for speed (`fsync=off`, `synchronous_commit=off`,
/// `full_page_writes=off`). It is torn down (and the directory removed) when the object is
/// released or `stop` is called.
///
/// ```swift
/// let server = try await PostgresServer.start()
/// defer { server.stop() }
/// let conninfo = server.connectionString   // "host=/tmp/mesh-pg-… port=… dbname=postgres user=postgres"
/// ```
///
/// The binaries come from `$MESH_PG_BIN`, else the newest `/usr/lib/postgresql/<v>/bin`,
/// else the directory of `postgres` on `PATH`. PostgreSQL refuses to run as root, so when
/// the tests run as root the cluster is created and run as the `postgres` user (through
/// `setpriv`), and the temp directory is handed to that user.
public final class PostgresServer: Sendable {
    /// TCP port on 127.0.0.1 (the unix socket uses the same number).
    public let port: Int
    /// The temp directory: `data/` (the cluster), the unix socket and `postgres.log`.
    public let directory: String
    /// The database superuser (trust authentication, no password).
    public let user: String
    private let child: ChildProcess
    private let binDirectory: String

    /// The directory holding the unix socket (`.s.PGSQL.<port>`).
    public var socketDirectory: String { directory }
    /// The cluster's data directory.
    public var dataDirectory: String { "\(directory)/data" }

    /// A libpq connection string over the unix socket:
    /// `host=<socketDirectory> port=<port> dbname=postgres user=<user>`.
    public var connectionString: String {
        "host=\(socketDirectory) port=\(port) dbname=postgres user=\(user)"
    }

    /// The same over TCP: `host=127.0.0.1 port=<port> dbname=postgres user=<user>`.
    public var tcpConnectionString: String {
        "host=127.0.0.1 port=\(port) dbname=postgres user=\(user)"
    }

    /// The directory with `initdb`, `postgres` and `pg_isready`, or nil when PostgreSQL
    /// is not installed.
    public static var binDirectory: String? {
        let fileManager = FileManager.default
        func hasServer(_ dir: String) -> Bool {
            fileManager.isExecutableFile(atPath: "\(dir)/postgres") && fileManager.isExecutableFile(atPath: "\(dir)/initdb")
        }
        if let explicit = ProcessInfo.processInfo.environment["MESH_PG_BIN"], !explicit.isEmpty {
            return hasServer(explicit) ? explicit : nil
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fileManager.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { name in Int(name).map { (version: $0, dir: "\(root)/\(name)/bin") } }
            .sorted { $0.version > $1.version }
        if let newest = versions.first(where: { hasServer($0.dir) }) { return newest.dir }
        if let postgres = TestEnvironment.which("postgres") {
            let dir = (postgres as NSString).deletingLastPathComponent
            if hasServer(dir) { return dir }
        }
        return nil
    }

    private init(port: Int, directory: String, user: String, binDirectory: String, child: ChildProcess) {
        self.port = port
        self.directory = directory
        self.user = user
        self.binDirectory = binDirectory
        self.child = child
    }

    /// Creates a cluster in a temp directory, starts the server and waits until it accepts
    /// connections.
    /// - Throws: `HarnessError` when the binaries are missing, `initdb` fails, or the
    ///   server does not come up in 20 s.
    public static func start() async throws -> PostgresServer {
        guard let bin = binDirectory else {
            throw HarnessError("PostgreSQL not found (install postgresql or set MESH_PG_BIN to its bin directory)")
        }
        let runAs = try ServerAccount.current()
        let directory = try TestEnvironment.makeTempDirectory(prefix: "pg")
        do {
            try runAs.own(directory)
            let user = "postgres"
            let initdb = try await runToCompletion(
                runAs.command("\(bin)/initdb", [
                    "-D", "\(directory)/data", "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C",
                    "--no-sync", "--no-instructions",
                ]),
                directory: directory, logPath: "\(directory)/initdb.log")
            guard initdb == 0 else {
                let log = (try? String(contentsOfFile: "\(directory)/initdb.log", encoding: .utf8)) ?? ""
                throw HarnessError("initdb failed (status \(initdb)): \(log.suffix(2_000))")
            }
            let port = try TestEnvironment.freePort()
            let (executable, arguments) = runAs.command("\(bin)/postgres", serverArguments(directory: directory, port: port))
            let child = try ChildProcess(executable: executable, arguments: arguments, logPath: "\(directory)/postgres.log")
            let server = PostgresServer(port: port, directory: directory, user: user, binDirectory: bin, child: child)
            try await server.waitReady()
            return server
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    private static func serverArguments(directory: String, port: Int) -> [String] {
        let settings = [
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=\(directory)",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=100",
            "shared_buffers=32MB",
            "max_parallel_workers_per_gather=0",
            "autovacuum=off",
            "log_min_messages=warning",
            "log_min_error_statement=panic",
        ]
        return ["-D", "\(directory)/data", "-p", "\(port)"] + settings.flatMap { ["-c", $0] }
    }

    /// Runs a one-shot command, polling (never blocking a cooperative thread) until it exits.
    private static func runToCompletion(_ command: (String, [String]), directory: String, logPath: String) async throws -> Int32 {
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
            let log = FileHandle(forWritingAtPath: logPath)
        else { throw HarnessError("cannot open \(logPath)") }
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command.0)
        process.arguments = command.1
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw HarnessError("cannot start \(command.0): \(error)") }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        return process.terminationStatus
    }

    private func waitReady() async throws {
        let socket = "\(socketDirectory)/.s.PGSQL.\(port)"
        let ready = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            guard child.isRunning else { return true }
            guard FileManager.default.fileExists(atPath: socket), TestEnvironment.isListening(port: port) else { return false }
            return (try? await Self.runToCompletion(
                ("\(binDirectory)/pg_isready", ["-q", "-h", socketDirectory, "-p", "\(port)", "-U", user, "-d", "postgres"]),
                directory: directory, logPath: "\(directory)/pg_isready.log")) == 0
        }
        guard ready, child.isRunning else { throw HarnessError("postgres did not start: \(child.logTail())") }
    }

    /// Stops the server with a fast shutdown (SIGINT: open sessions are terminated, a
    /// checkpoint is written) and keeps the cluster for `restart`.
    public func stopKeepingData() { child.stop(signal: SIGINT, timeout: .seconds(10)) }

    /// Stops the server like a crash: an immediate shutdown (SIGQUIT; no checkpoint, so
    /// `restart` replays the WAL). The cluster is kept.
    public func kill() { child.stop(signal: SIGQUIT, timeout: .seconds(10)) }

    /// Starts the server again on the same port with the same cluster; waits until ready.
    public func restart() async throws {
        child.stop(signal: SIGINT, timeout: .seconds(10))
        try child.restart()
        try await waitReady()
    }

    /// Stops the server (fast shutdown) and removes its temp directory.
    public func stop() {
        child.stop(signal: SIGINT, timeout: .seconds(10))
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The server's log (for failure messages).
    public func logTail() -> String { child.logTail() }

    deinit { stop() }
}

extension TestEnvironment {
    /// Whether tests needing PostgreSQL should run: the server binaries exist, or we are in
    /// CI (where a missing installation must fail loudly rather than skip).
    public static var postgresAvailable: Bool {
        if PostgresServer.binDirectory != nil || isCI { return true }
        print("skipping: PostgreSQL not found (set MESH_PG_BIN or install postgresql)")
        return false
    }
}

/// Who the server runs as: the current user, or — when that is root, which PostgreSQL
/// refuses — the `postgres` account, switched to with `setpriv` (which `exec`s, so the
/// child's pid is the server's own and signals reach it directly).
private struct ServerAccount {
    var switchTo: (uid: uid_t, gid: gid_t)?
    var setpriv: String?

    static func current() throws -> ServerAccount {
        guard geteuid() == 0 else { return ServerAccount(switchTo: nil, setpriv: nil) }
        guard let entry = getpwnam("postgres") else {
            throw HarnessError("running as root: PostgreSQL needs a `postgres` user to run as")
        }
        guard let setpriv = TestEnvironment.which("setpriv") else {
            throw HarnessError("running as root: `setpriv` (util-linux) is needed to run PostgreSQL as `postgres`")
        }
        return ServerAccount(switchTo: (entry.pointee.pw_uid, entry.pointee.pw_gid), setpriv: setpriv)
    }

    func own(_ path: String) throws {
        guard let switchTo else { return }
        guard chown(path, switchTo.uid, switchTo.gid) == 0 else {
            throw HarnessError("chown \(path) failed: errno \(errno)")
        }
    }

    func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        guard let switchTo, let setpriv else { return (executable, arguments) }
        return (setpriv, ["--reuid=\(switchTo.uid)", "--regid=\(switchTo.gid)", "--init-groups", executable] + arguments)
    }
}
