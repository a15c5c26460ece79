import Foundation
import MeshCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP load client of `bench gateway-http`: `connections` persistent HTTP/1.1
/// connections (keep-alive, no pipelining), each driven by a serial dispatch queue with
/// blocking socket calls, so the cooperative thread pool never blocks. A request goes to
/// the least busy connection; when all are busy it waits its turn on one (that waiting is
/// part of the latency, as it would be for a client with this many connections).
final class HTTPLoadClient: Sendable {
    /// A prepared request.
    struct Request: Sendable {
        var method: String
        var path: String
        var headers: [(String, String)]
        var body: [UInt8]

        func bytes(host: String, port: Int) -> [UInt8] {
            var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: meshctl-bench\r\nConnection: keep-alive\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            if !body.isEmpty || method == "POST" || method == "PUT" { head += "Content-Length: \(body.count)\r\n" }
            head += "\r\n"
            return Array(head.utf8) + body
        }
    }

    /// A non-2xx answer.
    struct StatusError: Error, CustomStringConvertible {
        var status: Int
        var description: String { status == 429 ? "HTTP 429 (rate limited: run the gateway with MESH_GATEWAY_RATE_LIMIT=0)" : "HTTP \(status)" }
    }

    let host: String
    let port: Int
    private let connections: [Connection]
    /// Requests queued or running per connection.
    private let busy: Mutex<[Int]>

    init(url: String, connections: Int) throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host else {
            throw CLIError("the gateway URL must be http://HOST:PORT, got \(url)")
        }
        self.host = host
        port = components.port ?? 80
        let port = self.port
        self.connections = (0..<max(1, connections)).map { Connection(host: host, port: port, index: $0) }
        busy = Mutex(Array(repeating: 0, count: max(1, connections)))
    }

    /// Sends `request` on the least busy connection (from `index % connections` on) and
    /// returns when its answer is read.
    /// - Throws: ``StatusError`` for a non-2xx status; ``MeshError`` for a transport failure.
    func send(_ request: [UInt8], index: Int) async throws {
        let slot = busy.withLock { counts -> Int in
            var best = index % counts.count
            for offset in 0..<counts.count where counts[(index + offset) % counts.count] < counts[best] {
                best = (index + offset) % counts.count
                if counts[best] == 0 { break }
            }
            counts[best] += 1
            return best
        }
        let connection = connections[slot]
        let status: Int
        do {
            status = try await withCheckedThrowingContinuation { continuation in
                connection.queue.async {
                    do { continuation.resume(returning: try connection.roundTrip(request)) } catch { continuation.resume(throwing: error) }
                }
            }
        } catch {
            busy.withLock { $0[slot] -= 1 }
            throw error
        }
        busy.withLock { $0[slot] -= 1 }
        guard (200..<300).contains(status) else { throw StatusError(status: status) }
    }

    func close() {
        for connection in connections { connection.queue.sync { connection.disconnect() } }
    }

    /// One socket; touched only on `queue` (hence `@unchecked Sendable`).
    final class Connection: @unchecked Sendable {
        let host: String
        let port: Int
        let queue: DispatchQueue
        private var fd: Int32 = -1
        private var buffer: [UInt8] = []
        private var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        /// Largest answer head + body kept (answers beyond fail the request).
        static let maxResponseBytes = 8 << 20

        init(host: String, port: Int, index: Int) {
            self.host = host
            self.port = port
            queue = DispatchQueue(label: "meshctl.bench.http.\(index)")
        }

        deinit { disconnect() }

        func disconnect() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
            buffer.removeAll(keepingCapacity: true)
        }

        private func connect() throws(MeshError) {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { throw MeshError(.unavailable, "cannot resolve \(host)") }
            defer { freeaddrinfo(result) }
            let socket = Glibc.socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard socket >= 0 else { throw MeshError(.internalError, "socket() failed") }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            guard Glibc.connect(socket, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                Glibc.close(socket)
                throw MeshError(.unavailable, "cannot connect to \(host):\(port)")
            }
            fd = socket
        }

        /// Sends one request and reads its whole answer; returns the status. A failure
        /// closes the socket (the next request reconnects).
        func roundTrip(_ request: [UInt8]) throws(MeshError) -> Int {
            do {
                return try exchange(request)
            } catch {
                disconnect()
                throw error
            }
        }

        private func exchange(_ request: [UInt8]) throws(MeshError) -> Int {
            if fd < 0 { try connect() }
            var sent = 0
            while sent < request.count {
                let n = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw MeshError(.unavailable, "send failed (errno \(errno))") }
                sent += n
            }
            // Head.
            var headEnd: Int?
            while true {
                headEnd = Self.find(buffer, [13, 10, 13, 10])
                if headEnd != nil { break }
                try fill()
            }
            let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
            let bodyStart = headEnd! + 4
            let lines = head.split(separator: "\r\n")
            guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1."), statusLine.count >= 12,
                let status = Int(statusLine.dropFirst(9).prefix(3))
            else { throw MeshError(.internalError, "not an HTTP answer") }
            var length: Int?
            var chunked = false
            var close = false
            for line in lines.dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let name = parts[0].lowercased()
                let value = parts[1].trimmingCharacters(in: .whitespaces).lowercased()
                if name == "content-length" { length = Int(value) }
                if name == "transfer-encoding" && value.contains("chunked") { chunked = true }
                if name == "connection" && value == "close" { close = true }
            }
            if chunked {
                var cursor = bodyStart
                while true {
                    var lineEnd = Self.find(buffer, [13, 10], from: cursor)
                    while lineEnd == nil {
                        try fill()
                        lineEnd = Self.find(buffer, [13, 10], from: cursor)
                    }
                    let sizeText = String(decoding: buffer[cursor..<lineEnd!], as: UTF8.self).split(separator: ";").first ?? ""
                    guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                        throw MeshError(.internalError, "bad chunk size")
                    }
                    let next = lineEnd! + 2 + size + 2
                    while buffer.count < next { try fill() }
                    cursor = next
                    if size == 0 { break }
                }
                buffer.removeFirst(cursor)
            } else {
                guard let length else { throw MeshError(.internalError, "an answer without Content-Length") }
                while buffer.count < bodyStart + length { try fill() }
                buffer.removeFirst(bodyStart + length)
            }
            if close { disconnect() }
            return status
        }

        private func fill() throws(MeshError) {
            guard buffer.count < Self.maxResponseBytes else { throw MeshError(.tooLarge, "answer larger than \(Self.maxResponseBytes) bytes") }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw MeshError(n == 0 ? .unavailable : .timeout, n == 0 ? "the gateway closed the connection" : "no answer within 10 s") }
            buffer.append(contentsOf: chunk[0..<n])
        }

        static func find(_ haystack: [UInt8], _ needle: [UInt8], from start: Int = 0) -> Int? {
            guard haystack.count >= needle.count + start else { return nil }
            var index = start
            while index <= haystack.count - needle.count {
                if haystack[index] == needle[0] {
                    var match = true
                    for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                        match = false
                        break
                    }
                    if match { return index }
                }
                index += 1
            }
            return nil
        }
    }
}
