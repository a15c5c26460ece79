#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A PostgreSQL cluster run as a child process: `initdb` on first use, then the server on
/// 127.0.0.1:`port` and a unix socket in `directory`. Used by `meshctl up` (persistent
/// `.mesh/postgres`) and by the test harness (a temp directory, durability off).
///
/// PostgreSQL refuses to run as root, so as root the cluster is created and run as the
/// `postgres` account through `setpriv` (which `exec`s: the child's pid is the server's
/// own, so signals reach it directly) and the directory is handed to that account.
///
/// The binaries come from `$MESH_PG_BIN`, else the newest `/usr/lib/postgresql/<v>/bin`,
/// else the directory of `postgres` on `PATH`.
public final class LocalPostgres: Sendable {
    /// TCP port on 127.0.0.1 (the unix socket uses the same number).
    public let port: Int
    /// Holds `data/` (the cluster), the unix socket and `postgres.log`.
    public let directory: String
    /// The database superuser (trust authentication on loopback and the socket only).
    public let user = "postgres"
    private let child: ChildProcess
    private let binDirectory: String

    /// The directory holding the unix socket (`.s.PGSQL.<port>`).
    public var socketDirectory: String { directory }
    /// The cluster's data directory.
    public var dataDirectory: String { "\(directory)/data" }
    /// The server's pid.
    public var pid: Int32 { child.pid }

    /// A libpq connection string over the unix socket.
    public func connectionString(database: String = "postgres") -> String {
        "host=\(socketDirectory) port=\(port) dbname=\(database) user=\(user)"
    }

    /// A libpq connection string over TCP on 127.0.0.1.
    public func tcpConnectionString(database: String = "postgres") -> String {
        "host=127.0.0.1 port=\(port) dbname=\(database) user=\(user)"
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
        if let postgres = LocalHost.which("postgres") {
            let dir = (postgres as NSString).deletingLastPathComponent
            if hasServer(dir) { return dir }
        }
        return nil
    }

    /// Creates the cluster if `directory` has none, starts the server and waits until it
    /// accepts connections.
    /// - Parameters:
    ///   - durable: `false` switches off fsync, synchronous commit and full-page writes
    ///     (tests: fast, unsafe on a crash).
    /// - Throws: ``LocalServerError`` when the binaries are missing, `initdb` fails, the
    ///   port is taken, or the server does not come up in 20 s.
    public init(directory: String, port: Int, durable: Bool = true) async throws {
        guard let bin = Self.binDirectory else {
            throw LocalServerError("PostgreSQL not found (install postgresql or set MESH_PG_BIN to its bin directory)")
        }
        if LocalHost.isListening(port: port) { throw LocalServerError("port \(port) on 127.0.0.1 is already in use") }
        let account = try ServerAccount.current()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try account.own(directory)
        try account.checkTraversable(directory)
        if !FileManager.default.fileExists(atPath: "\(directory)/data/PG_VERSION") {
            let initdb = try await Self.runToCompletion(
                account.command("\(bin)/initdb", [
                    "-D", "\(directory)/data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-instructions",
                ] + (durable ? [] : ["--no-sync"])),
                directory: directory, logPath: "\(directory)/initdb.log")
            guard initdb == 0 else {
                let log = (try? String(contentsOfFile: "\(directory)/initdb.log", encoding: .utf8)) ?? ""
                throw LocalServerError("initdb failed (status \(initdb)): \(log.suffix(2_000))")
            }
        }
        let (executable, arguments) = account.command("\(bin)/postgres", Self.serverArguments(directory: directory, port: port, durable: durable))
        self.port = port
        self.directory = directory
        self.binDirectory = bin
        self.child = try ChildProcess(executable: executable, arguments: arguments, logPath: "\(directory)/postgres.log")
        try await waitReady()
    }

    private static func serverArguments(directory: String, port: Int, durable: Bool) -> [String] {
        var settings = [
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=\(directory)",
            "max_connections=200",
            "shared_buffers=64MB",
            "log_min_messages=warning",
            "log_min_error_statement=panic",
        ]
        if !durable {
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "autovacuum=off", "max_parallel_workers_per_gather=0"]
        }
        return ["-D", "\(directory)/data", "-p", "\(port)"] + settings.flatMap { ["-c", $0] }
    }

    /// Runs a one-shot command, polling (never blocking a cooperative thread) until it exits.
    private static func runToCompletion(_ command: (String, [String]), directory: String, logPath: String) async throws -> Int32 {
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
            let log = FileHandle(forWritingAtPath: logPath)
        else { throw LocalServerError("cannot open \(logPath)") }
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command.0)
        process.arguments = command.1
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw LocalServerError("cannot start \(command.0): \(error)") }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        return process.terminationStatus
    }

    private func waitReady() async throws {
        let socket = "\(socketDirectory)/.s.PGSQL.\(port)"
        let ready = await LocalHost.waitUntil(timeout: .seconds(20)) {
            guard child.isRunning else { return true }
            guard FileManager.default.fileExists(atPath: socket), LocalHost.isListening(port: port) else { return false }
            return (try? await Self.runToCompletion(
                ("\(binDirectory)/pg_isready", ["-q", "-h", socketDirectory, "-p", "\(port)", "-U", user, "-d", "postgres"]),
                directory: directory, logPath: "\(directory)/pg_isready.log")) == 0
        }
        guard ready, child.isRunning else { throw LocalServerError("postgres did not start: \(child.logTail())") }
    }

    /// Fast shutdown (SIGINT: sessions terminated, checkpoint written); the cluster stays.
    public func stop() { child.stop(signal: SIGINT, timeout: .seconds(10)) }

    /// Immediate shutdown like a crash (SIGQUIT: no checkpoint; a restart replays the WAL).
    public func kill() { child.stop(signal: SIGQUIT, timeout: .seconds(10)) }

    /// Starts the server again on the same port with the same cluster; waits until ready.
    public func restart() async throws {
        await child.stop(signal: SIGINT, timeout: .seconds(10))
        try child.restart()
        try await waitReady()
    }

    /// Whether the server process runs.
    public var isRunning: Bool { child.isRunning }

    /// The end of the server's log (for error messages).
    public func logTail() -> String { child.logTail() }
}

/// Who the server runs as: the current user, or — when that is root — the `postgres`
/// account via `setpriv`.
private struct ServerAccount {
    var switchTo: (uid: uid_t, gid: gid_t)?
    var setpriv: String?

    static func current() throws -> ServerAccount {
        guard geteuid() == 0 else { return ServerAccount(switchTo: nil, setpriv: nil) }
        guard let entry = getpwnam("postgres") else {
            throw LocalServerError("running as root: PostgreSQL needs a `postgres` user to run as")
        }
        guard let setpriv = LocalHost.which("setpriv") else {
            throw LocalServerError("running as root: `setpriv` (util-linux) is needed to run PostgreSQL as `postgres`")
        }
        return ServerAccount(switchTo: (entry.pointee.pw_uid, entry.pointee.pw_gid), setpriv: setpriv)
    }

    func own(_ path: String) throws {
        guard let switchTo else { return }
        guard chown(path, switchTo.uid, switchTo.gid) == 0 else {
            throw LocalServerError("chown \(path) failed: errno \(errno)")
        }
    }

    /// The server account must be able to reach `path`: every ancestor directory needs the
    /// search (x) permission for others, else initdb fails with a bare "Permission denied".
    func checkTraversable(_ path: String) throws {
        guard let switchTo else { return }
        var ancestor = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent()
        while ancestor.path != "/" {
            var info = stat()
            if stat(ancestor.path, &info) == 0, info.st_uid != switchTo.uid, info.st_mode & S_IXOTH == 0 {
                throw LocalServerError(
                    "PostgreSQL runs as the `postgres` user, which cannot enter \(ancestor.path) (mode \(String(info.st_mode & 0o777, radix: 8))); "
                        + "choose a state directory under a world-searchable path or `chmod o+x` it")
            }
            ancestor.deleteLastPathComponent()
        }
    }

    func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        guard let switchTo, let setpriv else { return (executable, arguments) }
        return (setpriv, ["--reuid=\(switchTo.uid)", "--regid=\(switchTo.gid)", "--init-groups", executable] + arguments)
    }
}
