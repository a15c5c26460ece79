#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Foundation

/// A child process (a local server, a service, a test's subject) with its output sent to a
/// log file. It is killed when the object goes away (unless detached), so neither a failing
/// test nor an aborted `meshctl up` leaves a process behind.
public final class ChildProcess: @unchecked Sendable {
    // Safe: `process` is only mutated under `lock`; Foundation.Process is thread-safe for
    // the calls used here (terminate, processIdentifier, isRunning, waitUntilExit).
    private let lock = NSLock()
    private var process: Process
    private var detached = false
    /// The executable's path.
    public let executable: String
    /// The arguments it was started with.
    public let arguments: [String]
    /// Where stdout and stderr go.
    public let logPath: String
    /// Where stderr goes when kept apart from stdout (nil: into `logPath` too).
    public let errorLogPath: String?

    /// Starts `executable` with `arguments`; stdout and stderr are appended to `logPath`
    /// (stderr to `errorLogPath` instead when given).
    /// - Throws: ``LocalServerError`` when the process cannot be launched.
    public init(
        executable: String, arguments: [String], logPath: String, errorLogPath: String? = nil, environment: [String: String]? = nil
    ) throws {
        self.executable = executable
        self.arguments = arguments
        self.logPath = logPath
        self.errorLogPath = errorLogPath
        self.process = try Self.launch(executable, arguments, logPath, errorLogPath, environment)
    }

    private static func launch(
        _ executable: String, _ arguments: [String], _ logPath: String, _ errorLogPath: String?, _ environment: [String: String]?
    ) throws -> Process {
        func open(_ path: String) throws -> FileHandle {
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else { throw LocalServerError("cannot open \(path)") }
            handle.seekToEndOfFile()
            return handle
        }
        let log = try open(logPath)
        let errorLog = try errorLogPath.map(open) ?? log
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.standardOutput = log
        process.standardError = errorLog
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw LocalServerError("cannot start \(executable): \(error)") }
        return process
    }

    /// The process id.
    public var pid: Int32 { lock.withLock { process.processIdentifier } }

    /// Whether the process is still running.
    public var isRunning: Bool { lock.withLock { process.isRunning } }

    /// Sends `signal` (default SIGTERM) and waits up to `timeout` for the exit; then SIGKILL.
    /// - Returns: the exit status, or nil when it had to be killed.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(5)) -> Int32? {
        let process = lock.withLock { self.process }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { usleep(5_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    /// Kills the process at once with SIGKILL (a crash, as the system tests need).
    public func kill9() { _ = stop(signal: SIGKILL, timeout: .seconds(5)) }

    /// Like the blocking `stop`, but waits with `Task.sleep`, so a task that stops a slow
    /// process does not hold one of the cooperative pool's few threads meanwhile.
    /// - Returns: the exit status, or nil when it had to be killed.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(5)) async -> Int32? {
        let process = lock.withLock { self.process }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
            return nil
        }
        return process.terminationStatus
    }

    /// Starts the same command again (after `stop`), appending to the same log.
    public func restart(environment: [String: String]? = nil) throws {
        stop()
        let fresh = try Self.launch(executable, arguments, logPath, errorLogPath, environment)
        lock.withLock { process = fresh }
    }

    /// The log file's content (for a failing test's message).
    public func logTail(maxBytes: Int = 4_000) -> String {
        guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
        return String(decoding: data.suffix(maxBytes), as: UTF8.self)
    }

    /// Leaves the process running when this object goes away (a daemon handed off).
    public func detach() { lock.withLock { detached = true } }

    deinit {
        let process = self.process
        if !detached && process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}
