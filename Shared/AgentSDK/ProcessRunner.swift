#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import MeshCore
import Synchronization

/// One command to run.
struct ProcessRequest: Sendable {
    var executable: String
    /// argv, including argv[0].
    var arguments: [String]
    /// `KEY=value` strings: the whole environment.
    var environment: [String]
    var workingDirectory: String?
    var input: [UInt8]
    var deadline: ContinuousClock.Instant
    var maxOutputBytes: Int
}

enum ProcessResult: Sendable, Equatable {
    case exited(Int32, output: [UInt8], errorTail: [UInt8])
    case signaled(Int32)
    case timedOut
    case outputTooLarge
    case cancelled
    case spawnFailed(Int32)
}

/// Runs commands for `exec` agents: `posix_spawn` (never a shell) into a new process
/// group, stdin over a socket pair (written with `MSG_NOSIGNAL`, so a child that exits
/// early cannot SIGPIPE the worker), stdout/stderr over pipes, all driven by `poll` on a
/// thread of its own per process — the cooperative pool is never blocked. The number of
/// processes at once is bounded by the policy.
final class ExecRunner: Sendable {
    let policy: ExecPolicy
    private let running = Mutex(0)

    init(policy: ExecPolicy) { self.policy = policy }

    /// Runs `request` to its end, its deadline, its output cap or the task's cancellation.
    /// - Throws: ``MeshError`` `busy` when the worker runs its maximum of processes.
    func run(_ request: ProcessRequest) async throws(MeshError) -> ProcessResult {
        let admitted = running.withLock { count -> Bool in
            guard count < policy.maxConcurrentProcesses else { return false }
            count += 1
            return true
        }
        guard admitted else {
            throw MeshError(
                .busy, "exec: this worker already runs \(policy.maxConcurrentProcesses) processes; retry later",
                retryAfter: .milliseconds(200))
        }
        defer { running.withLock { $0 -= 1 } }
        let cancelled = CancelFlag()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ProcessResult, Never>) in
                Thread.detachNewThread {
                    continuation.resume(returning: Self.runBlocking(request, cancelled: cancelled))
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }

    final class CancelFlag: Sendable {
        private let flag = Atomic(false)
        func set() { flag.store(true, ordering: .releasing) }
        var isSet: Bool { flag.load(ordering: .acquiring) }
    }

    // MARK: - Blocking part (on its own thread)

    static func runBlocking(_ request: ProcessRequest, cancelled: CancelFlag) -> ProcessResult {
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        defer { for fd in input + output + errors where fd >= 0 { close(fd) } }
        #if canImport(Glibc)
        let streamType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
        let streamType = SOCK_STREAM
        #endif
        // Socket pairs rather than pipes: they can be created close-on-exec atomically
        // (the Glibc module does not export pipe2), and writes to stdin can use MSG_NOSIGNAL.
        guard socketpair(AF_UNIX, streamType, 0, &input) == 0, socketpair(AF_UNIX, streamType, 0, &output) == 0,
            socketpair(AF_UNIX, streamType, 0, &errors) == 0
        else { return .spawnFailed(errno) }
        shutdown(output[0], Int32(SHUT_WR))
        shutdown(errors[0], Int32(SHUT_WR))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[1], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        // Descriptors the worker opened without close-on-exec must not leak into the child.
        if let closeFrom = SpawnExtensions.addCloseFrom { _ = closeFrom(&actions, 3) }
        if let directory = request.workingDirectory {
            guard let addChdir = SpawnExtensions.addChdir else { return .spawnFailed(ENOSYS) }
            let status = directory.withCString { addChdir(&actions, $0) }
            guard status == 0 else { return .spawnFailed(status) }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var noMask = sigset_t()
        sigemptyset(&noMask)
        posix_spawnattr_setsigmask(&attributes, &noMask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = request.arguments.map { strdup($0) } + [nil]
        let envp = request.environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, request.executable, &actions, &attributes, argv, envp)
        guard status == 0 else { return .spawnFailed(status) }

        close(input[1])
        input[1] = -1
        close(output[1])
        output[1] = -1
        close(errors[1])
        errors[1] = -1
        for fd in [input[0], output[0], errors[0]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

        var written = 0
        var stdout: [UInt8] = []
        var stderrTail: [UInt8] = []
        var stdoutOpen = true
        var stderrOpen = true
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        if request.input.isEmpty {
            shutdown(input[0], Int32(SHUT_WR))
        }

        func killGroup() {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            var ignored: Int32 = 0
            while waitpid(pid, &ignored, 0) < 0 && errno == EINTR {}
        }

        while stdoutOpen || stderrOpen {
            if cancelled.isSet {
                killGroup()
                return .cancelled
            }
            let remaining = request.deadline - .now
            if remaining <= .zero {
                killGroup()
                return .timedOut
            }
            var fds: [pollfd] = []
            let writing = written < request.input.count
            if writing { fds.append(pollfd(fd: input[0], events: Int16(POLLOUT), revents: 0)) }
            if stdoutOpen { fds.append(pollfd(fd: output[0], events: Int16(POLLIN), revents: 0)) }
            if stderrOpen { fds.append(pollfd(fd: errors[0], events: Int16(POLLIN), revents: 0)) }
            let waitMs = Int32(min(20, max(1, remaining.totalMilliseconds)))
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 && errno != EINTR {
                killGroup()
                return .spawnFailed(errno)
            }
            if writing {
                let sent = request.input.withUnsafeBytes { bytes in
                    send(input[0], bytes.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
                }
                if sent > 0 {
                    written += sent
                    if written == request.input.count { shutdown(input[0], Int32(SHUT_WR)) }
                } else if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    // The child closed its stdin: stop feeding it, keep reading its output.
                    written = request.input.count
                    shutdown(input[0], Int32(SHUT_WR))
                }
            }
            if stdoutOpen {
                let count = buffer.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
                if count > 0 {
                    stdout.append(contentsOf: buffer[0..<count])
                    if stdout.count > request.maxOutputBytes {
                        killGroup()
                        return .outputTooLarge
                    }
                } else if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    stdoutOpen = false
                }
            }
            if stderrOpen {
                let count = buffer.withUnsafeMutableBytes { read(errors[0], $0.baseAddress, $0.count) }
                if count > 0 {
                    stderrTail.append(contentsOf: buffer[0..<count])
                    if stderrTail.count > 4096 { stderrTail.removeFirst(stderrTail.count - 4096) }
                } else if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    stderrOpen = false
                }
            }
        }
        // Output closed: wait for the exit, still bounded by the deadline.
        var exitStatus: Int32 = 0
        while true {
            let result = waitpid(pid, &exitStatus, WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { return .spawnFailed(errno) }
            if cancelled.isSet {
                killGroup()
                return .cancelled
            }
            if ContinuousClock.now >= request.deadline {
                killGroup()
                return .timedOut
            }
            usleep(1_000)
        }
        let signal = exitStatus & 0x7f
        if signal != 0 { return .signaled(signal) }
        return .exited((exitStatus >> 8) & 0xff, output: stdout, errorTail: stderrTail)
    }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` and `…_addchdir_np`, which the
/// Swift Glibc module does not export: looked up once with `dlsym`, nil where missing.
enum SpawnExtensions {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32

    static let addCloseFrom: AddCloseFrom? = lookup("posix_spawn_file_actions_addclosefrom_np")
    static let addChdir: AddChdir? = lookup("posix_spawn_file_actions_addchdir_np")

    private static func lookup<Function>(_ name: String) -> Function? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: Function.self)
    }
}
