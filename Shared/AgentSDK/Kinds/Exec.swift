import Logging
import MeshCore

/// The worker's rules for the `exec` kind: which executables agents may run at all. An
/// agent's own config only picks one of them — a spec can never widen the list.
///
/// ```swift
/// let options = BuiltInKindOptions(exec: ExecPolicy(allowedCommands: ["/usr/bin/jq", "/opt/tools/score"]))
/// ```
public struct ExecPolicy: Sendable {
    /// Absolute paths of the executables `exec` agents may run, compared literally (no
    /// symlink resolution, no `PATH` search). Empty (the default): every `exec` agent is refused.
    public var allowedCommands: Set<String>
    /// Processes run at once by all `exec` agents of the worker; one more answers `busy`.
    /// Default 16.
    public var maxConcurrentProcesses: Int

    public init(allowedCommands: [String] = [], maxConcurrentProcesses: Int = 16) {
        self.allowedCommands = Set(allowedCommands)
        self.maxConcurrentProcesses = max(1, maxConcurrentProcesses)
    }
}

/// `exec`: runs one allowed command per action, JSON in and JSON out. Stateless.
///
/// ```json
/// config: {"command": "/usr/bin/jq",            // must be on the worker's allow-list (ExecPolicy)
///          "args": ["-c", "{sum: (.a + .b)}"],  // fixed arguments; the payload never becomes argv
///          "env": {"MODE": "fast"},             // optional extra environment
///          "workingDirectory": "/srv/tools",    // optional
///          "timeoutMs": 10000,                  // default 10 s, at most 10 min; never past the action's deadline
///          "maxOutputBytes": 1048576}           // stdout cap, default 1 MiB, at most 16 MiB
/// any action, JSON payload (empty: {}) → the command's stdout, which must be one JSON document
/// ```
/// The command is started directly (`posix_spawn`, never a shell) in its own process
/// group, with the payload on stdin (then closed) and an environment of only
/// `PATH=/usr/local/bin:/usr/bin:/bin`, `MESH_AGENT_ID`, `MESH_ACTION` and the config's
/// `env` — the worker's own environment (and its secrets) is not passed on. On a timeout,
/// an output overflow or cancellation the whole group is killed (SIGKILL); after a normal
/// exit, processes the command deliberately left in the background are not hunted down.
///
/// Errors (the agent keeps running): a non-zero exit answers `internal` with the exit
/// status; death by a signal answers `internal` with the signal; overrunning the timeout
/// kills the whole process group and answers `timeout`; stdout beyond the cap kills it and
/// answers `too_large`; stdout that is not JSON answers `internal`; the worker at its
/// process limit answers `busy`. Messages never include the payload, stdout or stderr
/// (stderr is read and dropped; a failure is logged at debug level with the exit status).
public struct ExecKind: AgentBehavior {
    /// The registered name, `exec`.
    public static let kindName = AgentKindName.exec

    public struct Configuration: Decodable, Sendable {
        public var command: String
        public var args: [String]?
        public var env: [String: String]?
        public var workingDirectory: String?
        public var timeoutMs: Int?
        public var maxOutputBytes: Int?
    }

    let command: String
    let arguments: [String]
    let environment: [String]
    let workingDirectory: String?
    let timeout: Duration
    let maxOutputBytes: Int
    let runner: ExecRunner

    /// Creates an exec agent with no allow-list: always refused. The registry's built-in
    /// `exec` uses ``init(configuration:runner:setup:)`` with the worker's policy.
    public init(configuration: Configuration, setup: AgentSetup) throws {
        try self.init(configuration: configuration, runner: ExecRunner(policy: ExecPolicy()), setup: setup)
    }

    init(configuration: Configuration, runner: ExecRunner, setup: AgentSetup) throws {
        guard configuration.command.hasPrefix("/") else {
            throw MeshError(.invalidArgument, "exec config: 'command' must be an absolute path")
        }
        guard runner.policy.allowedCommands.contains(configuration.command) else {
            throw MeshError(
                .permissionDenied, "exec: command \(Check.shown(configuration.command, max: 200)) is not on this worker's allow-list")
        }
        command = configuration.command
        arguments = configuration.args ?? []
        guard arguments.count <= 256, arguments.allSatisfy({ !$0.utf8.contains(0) }) else {
            throw MeshError(.invalidArgument, "exec config: 'args' must be at most 256 strings without NUL bytes")
        }
        var environment = ["PATH=/usr/local/bin:/usr/bin:/bin", "MESH_AGENT_ID=\(setup.agentID.rawValue)"]
        for (key, value) in (configuration.env ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard Self.isEnvironmentName(key), !key.hasPrefix("MESH_"), key != "PATH", !value.utf8.contains(0) else {
                throw MeshError(
                    .invalidArgument, "exec config: 'env' names must match [A-Za-z_][A-Za-z0-9_]* and not be PATH or MESH_*")
            }
            environment.append("\(key)=\(value)")
        }
        self.environment = environment
        workingDirectory = configuration.workingDirectory
        timeout = .milliseconds(try Check.range(configuration.timeoutMs, "timeoutMs", in: 1...600_000, default: 10_000, kind: "exec"))
        maxOutputBytes = try Check.range(configuration.maxOutputBytes, "maxOutputBytes", in: 1...(16 << 20), default: 1 << 20, kind: "exec")
        self.runner = runner
    }

    public func mayChangeState(_ action: String) -> Bool { false }

    public func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        let input = payload.isEmpty ? Array("{}".utf8) : payload
        guard JSONCoding.isJSON(input) else {
            throw MeshError(.invalidArgument, "exec: the payload must be one JSON document")
        }
        let request = ProcessRequest(
            executable: command, arguments: [command] + arguments,
            environment: environment + ["MESH_ACTION=\(action.utf8.contains(0) ? "" : action)"],
            workingDirectory: workingDirectory, input: input, deadline: context.deadline(within: timeout), maxOutputBytes: maxOutputBytes)
        let result = try await runner.run(request)
        let name = Check.shown(command, max: 200)
        switch result {
        case .exited(0, let output, _):
            guard JSONCoding.isJSON(output) else { throw MeshError(.internalError, "exec: the output of \(name) is not one JSON document") }
            return output
        case .exited(let status, _, let errorTail):
            // stderr is not logged: it may echo the payload or secrets.
            context.logger.debug("exec command failed", metadata: ["mesh.exec.status": "\(status)", "mesh.exec.stderr.bytes": "\(errorTail.count)"])
            throw MeshError(.internalError, "exec: \(name) exited with status \(status)")
        case .signaled(let signal):
            throw MeshError(.internalError, "exec: \(name) was terminated by signal \(signal)")
        case .timedOut:
            throw MeshError(.timeout, "exec: \(name) did not finish in time and was killed")
        case .outputTooLarge:
            throw MeshError(.tooLarge, "exec: \(name) wrote more than \(maxOutputBytes) bytes and was killed")
        case .cancelled:
            throw CancellationError()
        case .spawnFailed(let code):
            throw MeshError(.internalError, "exec: cannot start \(name) (errno \(code))")
        }
    }

    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || (first | 0x20 >= UInt8(ascii: "a") && first | 0x20 <= UInt8(ascii: "z")) else {
            return false
        }
        return name.utf8.allSatisfy { byte in
            byte == UInt8(ascii: "_") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
        }
    }
}
