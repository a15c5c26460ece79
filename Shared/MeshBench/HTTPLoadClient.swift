public import MeshCore
import CLinux
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP load client of `bench gateway-http`: `connections` persistent HTTP/1.1
/// connections (keep-alive, no pipelining) driven by one thread with `epoll`, as wrk does —
/// no thread per connection, no head parsing through `String`. A request takes an idle
/// connection, or waits in one queue for the first connection to become free (that wait is
/// part of its latency, as it would be for a client with this many connections).
///
/// ```swift
/// let client = try HTTPLoadClient(url: "http://127.0.0.1:8080", connections: 64)
/// defer { client.close() }
/// let health = HTTPLoadClient.Request(method: "GET", path: "/health").bytes(host: client.host, port: client.port)
/// try await client.send(health)
/// ```
public final class HTTPLoadClient: Sendable {
    /// A request to prepare once and send many times.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var headers: [(String, String)]
        public var body: [UInt8]

        public init(method: String, path: String, headers: [(String, String)] = [], body: [UInt8] = []) {
            self.method = method
            self.path = path
            self.headers = headers
            self.body = body
        }

        /// The request as sent: head (with `Host`, keep-alive and `Content-Length`) and body.
        public func bytes(host: String, port: Int) -> [UInt8] {
            var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: meshctl-bench\r\nConnection: keep-alive\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            if !body.isEmpty || method == "POST" || method == "PUT" { head += "Content-Length: \(body.count)\r\n" }
            head += "\r\n"
            return Array(head.utf8) + body
        }
    }

    /// A non-2xx answer.
    public struct StatusError: Error, CustomStringConvertible {
        public var status: Int
        public var description: String { status == 429 ? "HTTP 429 (rate limited: run the gateway with MESH_GATEWAY_RATE_LIMIT=0)" : "HTTP \(status)" }
    }

    /// A request without its whole answer after this long fails (and its connection closes).
    public static let requestTimeout: Duration = .seconds(10)

    public let host: String
    public let port: Int
    private let loop: EventLoop

    /// Prepares the connections (they open on first use) and starts the event thread.
    /// - Throws: `MeshError` `.invalidArgument` for a URL that is not `http://HOST[:PORT]`,
    ///   `.internalError` when `epoll` cannot be set up.
    public init(url: String, connections: Int) throws(MeshError) {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host, !host.isEmpty else {
            throw MeshError(.invalidArgument, "the gateway URL must be http://HOST:PORT, got \(url)")
        }
        self.host = host
        port = components.port ?? 80
        loop = try EventLoop(host: host, port: port, connections: max(1, connections))
    }

    deinit { loop.stop() }

    /// Sends `request` on the first free connection and returns when its whole answer has
    /// been read.
    /// - Throws: ``StatusError`` for a non-2xx status; `MeshError` for a transport failure
    ///   (`.unavailable`), no answer within ``requestTimeout`` (`.timeout`), a malformed or
    ///   oversized answer, or a closed client.
    public func send(_ request: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            send(request) { failure in
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume() }
            }
        }
    }

    /// ``send(_:)`` with a completion instead of a task: `completion` runs once, with nil or
    /// the error, on the client's event thread (or the caller's, for a closed client). It
    /// must not block; it may send the next request, as wrk does.
    public func send(_ request: [UInt8], completion: @escaping @Sendable ((any Error)?) -> Void) {
        loop.submit(
            EventLoop.Pending(request: request) { result in
                switch result {
                case .success(let status) where (200..<300).contains(status): completion(nil)
                case .success(let status): completion(StatusError(status: status))
                case .failure(let error): completion(error)
                }
            })
    }

    /// Stops the event thread and closes the connections; requests not answered yet fail.
    public func close() { loop.stop() }
}

/// Finds where one HTTP/1.1 answer ends in the bytes read so far. Pure: tested on its own.
public enum HTTPResponseParser {
    /// Largest answer (head and body) accepted.
    public static let maxResponseBytes = 8 << 20

    public enum Outcome: Equatable, Sendable {
        /// More bytes are needed.
        case incomplete
        /// The first `length` bytes are one whole answer; `close`: the server ends the connection.
        case complete(status: Int, length: Int, close: Bool)
    }

    /// - Throws: `MeshError` `.internalError` for bytes that are not an HTTP/1.x answer (or
    ///   one without a length), `.tooLarge` past ``maxResponseBytes``.
    public static func parse(_ bytes: [UInt8]) throws(MeshError) -> Outcome {
        guard let headEnd = find(bytes, [13, 10, 13, 10], from: 0) else {
            if bytes.count > maxResponseBytes { throw MeshError(.tooLarge, "answer head larger than \(maxResponseBytes) bytes") }
            return .incomplete
        }
        // "HTTP/1.x NNN"
        guard headEnd >= 12, bytes[0..<7].elementsEqual("HTTP/1.".utf8), bytes[8] == 32,
            let status = number(bytes[9..<12]), (100...999).contains(status)
        else { throw MeshError(.internalError, "not an HTTP/1.x answer") }
        var length: Int?
        var chunked = false
        var close = false
        var lineStart = (find(bytes, [13, 10], from: 0) ?? headEnd) + 2
        while lineStart < headEnd {
            let lineEnd = find(bytes, [13, 10], from: lineStart) ?? headEnd
            if let colon = bytes[lineStart..<lineEnd].firstIndex(of: 58) {
                let name = bytes[lineStart..<colon]
                let value = trimmed(bytes[(colon + 1)..<lineEnd])
                if equalsIgnoringCase(name, "content-length") {
                    guard let parsed = number(value) else { throw MeshError(.internalError, "bad Content-Length") }
                    length = parsed
                } else if equalsIgnoringCase(name, "transfer-encoding") {
                    chunked = lowercased(value).contains("chunked")
                } else if equalsIgnoringCase(name, "connection") {
                    close = equalsIgnoringCase(value, "close")
                }
            }
            lineStart = lineEnd + 2
        }
        let bodyStart = headEnd + 4
        if chunked {
            var cursor = bodyStart
            while true {
                guard let lineEnd = find(bytes, [13, 10], from: cursor) else { return try limit(bytes, .incomplete) }
                let sizeField = bytes[cursor..<lineEnd].prefix { $0 != 59 }  // before any ";extension"
                guard let size = number(trimmed(sizeField), radix: 16) else { throw MeshError(.internalError, "bad chunk size") }
                let next = lineEnd + 2 + size + 2
                guard next <= maxResponseBytes else { throw MeshError(.tooLarge, "answer larger than \(maxResponseBytes) bytes") }
                guard bytes.count >= next else { return .incomplete }
                cursor = next
                if size == 0 { return .complete(status: status, length: cursor, close: close) }
            }
        }
        let bodyLength: Int
        if let length {
            bodyLength = length
        } else if status == 204 || status == 304 || status < 200 {
            bodyLength = 0
        } else {
            throw MeshError(.internalError, "an answer without Content-Length")
        }
        guard bodyStart + bodyLength <= maxResponseBytes else { throw MeshError(.tooLarge, "answer larger than \(maxResponseBytes) bytes") }
        return bytes.count >= bodyStart + bodyLength ? .complete(status: status, length: bodyStart + bodyLength, close: close) : .incomplete
    }

    private static func limit(_ bytes: [UInt8], _ outcome: Outcome) throws(MeshError) -> Outcome {
        if bytes.count > maxResponseBytes { throw MeshError(.tooLarge, "answer larger than \(maxResponseBytes) bytes") }
        return outcome
    }

    /// Where `needle` starts in `bytes` at or after `start`. A plain loop: the standard
    /// library's generic `firstRange(of:)` made this client's /health figure a third lower.
    private static func find(_ bytes: [UInt8], _ needle: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count + start else { return nil }
        var index = start
        while index <= bytes.count - needle.count {
            if bytes[index] == needle[0], needle.indices.dropFirst().allSatisfy({ bytes[index + $0] == needle[$0] }) { return index }
            index += 1
        }
        return nil
    }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == 32 || first == 9 { slice = slice.dropFirst() }
        while let last = slice.last, last == 32 || last == 9 { slice = slice.dropLast() }
        return slice
    }

    private static func lowercased(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }

    private static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: String) -> Bool {
        bytes.count == lowercase.utf8.count && zip(bytes, lowercase.utf8).allSatisfy { ((65...90).contains($0) ? $0 + 32 : $0) == $1 }
    }

    /// A non-negative integer written in `radix` digits (no sign), else nil.
    private static func number(_ bytes: ArraySlice<UInt8>, radix: Int = 10) -> Int? {
        guard let first = bytes.first, first != 43, first != 45 else { return nil }  // no "+" or "-"
        return Int(String(decoding: bytes, as: UTF8.self), radix: radix)
    }
}

/// The event thread: every socket is non-blocking and touched only on this thread;
/// requests arrive through `inbox` (a lock and an eventfd, written only when the thread
/// sleeps in `epoll_wait`). Answers resume their callers from this thread.
private final class EventLoop: @unchecked Sendable {
    struct Pending {
        var request: [UInt8]
        /// The answer's status, or the failure.
        var completion: @Sendable (Result<Int, any Error>) -> Void
    }

    /// One connection; state touched only on the event thread.
    final class Connection {
        let index: Int
        var fd: Int32 = -1
        var current: Pending?
        var started = ContinuousClock.now
        var out: [UInt8] = []
        var written = 0
        var wantsWrite = false
        var buffer: [UInt8] = []
        init(index: Int) { self.index = index }
    }

    private struct Inbox {
        var items: [Pending] = []
        var sleeping = false
        var stopped = false
    }

    private let host: String
    private let port: Int
    private let epoll: Int32
    private let wake: Int32
    private let inbox = Mutex(Inbox())
    private let done = DispatchSemaphore(value: 0)
    // Event thread only:
    private var connections: [Connection]
    private var idle: [Int]
    private var waiting: [Pending] = []
    private var waitingHead = 0
    /// Connections freed by a failure, to hand the next waiting request.
    private var freed: [Int] = []
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(host: String, port: Int, connections count: Int) throws(MeshError) {
        self.host = host
        self.port = port
        connections = (0..<count).map { Connection(index: $0) }
        idle = Array((0..<count).reversed())
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard epoll >= 0, wake >= 0 else { throw MeshError(.internalError, "cannot set up epoll (errno \(errno))") }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u32 = Self.wakeToken
        _ = epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
        let thread = Thread { [self] in run() }
        thread.name = "meshctl.bench.http"
        thread.start()
    }

    func submit(_ pending: Pending) {
        let (accepted, wake) = inbox.withLock { inbox -> (Bool, Bool) in
            guard !inbox.stopped else { return (false, false) }
            inbox.items.append(pending)
            defer { inbox.sleeping = false }
            return (true, inbox.sleeping)
        }
        guard accepted else { return pending.completion(.failure(MeshError(.unavailable, "the HTTP load client is closed"))) }
        if wake { wakeUp() }
    }

    func stop() {
        let first = inbox.withLock { inbox -> Bool in
            defer { inbox.stopped = true }
            return !inbox.stopped
        }
        guard first else { return }
        wakeUp()
        done.wait()
        Glibc.close(epoll)
        Glibc.close(wake)
    }

    private static let wakeToken = UInt32.max

    private func wakeUp() { _ = eventfd_write(wake, 1) }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 128)
        var lastSweep = ContinuousClock.now
        while true {
            let (items, stopped) = inbox.withLock { inbox -> ([Pending], Bool) in
                defer { inbox.items.removeAll(keepingCapacity: true) }
                return (inbox.items, inbox.stopped)
            }
            for item in items { dispatch(item) }
            drainFreed()
            if stopped { break }
            let asleep = inbox.withLock { inbox -> Bool in
                inbox.sleeping = inbox.items.isEmpty && !inbox.stopped
                return inbox.sleeping
            }
            let ready = epoll_wait(epoll, &events, Int32(events.count), asleep ? 100 : 0)
            inbox.withLock { $0.sleeping = false }
            for event in events.prefix(Int(max(0, ready))) {
                guard event.data.u32 != Self.wakeToken else {
                    var count: eventfd_t = 0
                    _ = eventfd_read(wake, &count)
                    continue
                }
                let connection = connections[Int(event.data.u32)]
                if event.events & EPOLLOUT.rawValue != 0 { flush(connection) }
                if event.events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { readable(connection) }
            }
            let now = ContinuousClock.now
            if now - lastSweep >= .milliseconds(100) {
                lastSweep = now
                for connection in connections where connection.current != nil && now - connection.started > HTTPLoadClient.requestTimeout {
                    fail(connection, MeshError(.timeout, "no answer within \(HTTPLoadClient.requestTimeout)"))
                }
            }
            drainFreed()
        }
        let closed = MeshError(.unavailable, "the HTTP load client is closed")
        for connection in connections {
            if let pending = connection.current { pending.completion(.failure(closed)) }
            connection.current = nil
            disconnect(connection)
        }
        for pending in waiting[waitingHead...] { pending.completion(.failure(closed)) }
        waiting.removeAll()
        // Submissions that raced with stop.
        for pending in inbox.withLock({ inbox in defer { inbox.items.removeAll() }; return inbox.items }) {
            pending.completion(.failure(closed))
        }
        done.signal()
    }

    private func dispatch(_ pending: Pending) {
        guard let index = idle.popLast() else { return waiting.append(pending) }
        begin(connections[index], pending)
    }

    /// The connection is free: it takes the next waiting request, or goes back to the idle
    /// list. Never recursive: a request that fails at once frees its connection through
    /// `freed`, which the loop drains.
    private func next(_ connection: Connection) {
        guard waitingHead < waiting.count else { return idle.append(connection.index) }
        let pending = waiting[waitingHead]
        waitingHead += 1
        if waitingHead == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            waitingHead = 0
        } else if waitingHead > 1_024 && waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
        begin(connection, pending)
    }

    private func drainFreed() {
        while let index = freed.popLast() { next(connections[index]) }
    }

    /// Sends `pending` on `connection` (connecting first if needed: a blocking connect,
    /// quick on the loopback this client is for).
    private func begin(_ connection: Connection, _ pending: Pending) {
        connection.current = pending
        connection.started = .now
        connection.out = pending.request
        connection.written = 0
        if connection.fd < 0 {
            do throws(MeshError) { try connect(connection) } catch { return fail(connection, error) }
        }
        flush(connection)
    }

    private func connect(_ connection: Connection) throws(MeshError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { throw MeshError(.unavailable, "cannot resolve \(host)") }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { throw MeshError(.internalError, "socket() failed (errno \(errno))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            Glibc.close(fd)
            throw MeshError(.unavailable, "cannot connect to \(host):\(port)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u32 = UInt32(connection.index)
        _ = epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
        connection.fd = fd
        connection.wantsWrite = false
        connection.buffer.removeAll(keepingCapacity: true)
    }

    private func disconnect(_ connection: Connection) {
        if connection.fd >= 0 { Glibc.close(connection.fd) }  // also leaves the epoll set
        connection.fd = -1
        connection.buffer.removeAll(keepingCapacity: true)
    }

    private func watchWrites(_ connection: Connection, _ on: Bool) {
        guard connection.wantsWrite != on else { return }
        connection.wantsWrite = on
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (on ? EPOLLOUT.rawValue : 0)
        event.data.u32 = UInt32(connection.index)
        _ = epoll_ctl(epoll, EPOLL_CTL_MOD, connection.fd, &event)
    }

    private func flush(_ connection: Connection) {
        guard connection.current != nil, connection.fd >= 0 else { return }
        while connection.written < connection.out.count {
            let sent = connection.out.withUnsafeBytes { bytes in
                Glibc.send(connection.fd, bytes.baseAddress! + connection.written, bytes.count - connection.written, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if sent > 0 {
                connection.written += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return watchWrites(connection, true)
            } else if sent < 0 && errno == EINTR {
                continue
            } else {
                return fail(connection, MeshError(.unavailable, "send failed (errno \(errno))"))
            }
        }
        watchWrites(connection, false)
    }

    private func readable(_ connection: Connection) {
        while connection.fd >= 0 {
            let received = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if received > 0 {
                connection.buffer.append(contentsOf: chunk[0..<received])
                if received < chunk.count { break }
            } else if received == 0 {
                return fail(connection, MeshError(.unavailable, "the server closed the connection"))
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                break
            } else if errno != EINTR {
                return fail(connection, MeshError(.unavailable, "receive failed (errno \(errno))"))
            }
        }
        guard let pending = connection.current else {
            // Bytes nobody asked for: the connection is out of step.
            if !connection.buffer.isEmpty { disconnect(connection) }
            return
        }
        let outcome: HTTPResponseParser.Outcome
        do throws(MeshError) { outcome = try HTTPResponseParser.parse(connection.buffer) } catch {
            return fail(connection, error)
        }
        guard case .complete(let status, let length, let close) = outcome else { return }
        connection.buffer.removeFirst(length)
        connection.current = nil
        if close || !connection.buffer.isEmpty { disconnect(connection) }
        pending.completion(.success(status))
        next(connection)
    }

    /// Fails the connection's request and closes it (the next request reconnects).
    private func fail(_ connection: Connection, _ error: MeshError) {
        disconnect(connection)
        guard let pending = connection.current else { return }
        connection.current = nil
        pending.completion(.failure(error))
        freed.append(connection.index)
    }
}
