#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal blocking HTTP/1.1 client (one request per connection) — for container health
/// probes (`meshctl probe`), `meshctl`'s gateway commands and tests, where pulling in an
/// HTTP client library is not worth it. Plain HTTP only.
public enum LocalHTTP {
    /// A response: status code, headers (names lowercased) and body bytes (at most `maxBytes`).
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String] = [:]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// GETs `path` from `host:port`.
    /// - Throws: ``LocalServerError`` when the host cannot be reached or does not speak HTTP.
    public static func get(host: String, port: Int, path: String, timeoutMs: Int = 2_000, maxBytes: Int = 16 << 20) throws -> Response {
        try request("GET", host: host, port: port, path: path, timeoutMs: timeoutMs, maxBytes: maxBytes)
    }

    /// Sends one request and reads the whole answer (`Connection: close`).
    /// - Parameters:
    ///   - method: `GET`, `POST`, `PUT`, `DELETE`, …
    ///   - path: the request target, already percent-encoded (`/api/v1/agents?limit=5`).
    ///   - headers: extra header lines (no CR/LF allowed in them).
    ///   - body: sent with a `Content-Length` unless `sendContentLength` is false.
    ///   - stopWhen: for endless answers (Server-Sent Events): stop reading once it returns
    ///     true for what was received so far (head and body); reading also stops at the
    ///     timeout without data.
    /// - Throws: ``LocalServerError`` when the host cannot be reached, a header is malformed,
    ///   or the answer is not HTTP.
    public static func request(
        _ method: String, host: String, port: Int, path: String, headers: [(String, String)] = [], body: [UInt8] = [],
        sendContentLength: Bool = true, timeoutMs: Int = 10_000, maxBytes: Int = 16 << 20,
        stopWhen: ((_ received: [UInt8]) -> Bool)? = nil
    ) throws -> Response {
        for (name, value) in headers where (name + value).contains(where: { $0 == "\r" || $0 == "\n" }) {
            throw LocalServerError("header \(name) contains a line break")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: mesh\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if sendContentLength && (!body.isEmpty || method == "POST" || method == "PUT") { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let response = try exchange(host: host, port: port, parts: [Array(head.utf8), body], timeoutMs: timeoutMs, maxBytes: maxBytes, stopWhen: stopWhen)
        guard let headerEnd = response.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw LocalServerError("no HTTP answer from \(host):\(port)")
        }
        let lines = String(decoding: response[..<headerEnd.lowerBound], as: UTF8.self).split(separator: "\r\n")
        let parts = (lines.first ?? "").split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw LocalServerError("not an HTTP answer from \(host):\(port)")
        }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: " ")
        }
        var content = Array(response[headerEnd.upperBound...])
        if fields["transfer-encoding"]?.lowercased() == "chunked" { content = dechunk(content) }
        return Response(status: status, headers: fields, body: content)
    }

    /// Sends `parts` on one new connection, one after the other, and returns every byte
    /// received until the server closes, `stopWhen` returns true for what was received so
    /// far, `maxBytes` were read, or `timeoutMs` passed without data. For requests written
    /// by hand: several pipelined requests, say.
    /// - Parameter sendNext: when given, part `n` (from 1) is sent only once it returns
    ///   true for what was received so far (an answer to the parts before, say).
    /// - Throws: ``LocalServerError`` when the host cannot be reached.
    public static func exchange(
        host: String, port: Int, parts: [[UInt8]], timeoutMs: Int = 10_000, maxBytes: Int = 16 << 20,
        sendNext: ((_ received: [UInt8], _ part: Int) -> Bool)? = nil, stopWhen: ((_ received: [UInt8]) -> Bool)? = nil
    ) throws -> [UInt8] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else {
            throw LocalServerError("cannot resolve \(host)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { throw LocalServerError("socket() failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int(timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            throw LocalServerError("cannot connect to \(host):\(port)")
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        func receive() -> Bool {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received <= 0 { return false }
            response.append(contentsOf: chunk[0..<received])
            return true
        }
        for (index, part) in parts.enumerated() {
            if let sendNext, index > 0 {
                while !sendNext(response, index) { guard receive() else { return response } }
            }
            // A server may answer (413) and close before taking the whole body: a failed send
            // is not an error as long as an answer can be read.
            if !part.isEmpty && !sendAll(fd, part) {
                shutdown(fd, Int32(SHUT_WR))
                break
            }
        }
        while response.count < maxBytes, receive() {
            if let stopWhen, stopWhen(response) { break }
        }
        return response
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            #if canImport(Glibc)
            let flags = Int32(MSG_NOSIGNAL)
            #else
            let flags: Int32 = 0
            #endif
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, flags) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    private static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = bytes[index...].firstRange(of: Array("\r\n".utf8)) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: " "), radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            guard start + size <= bytes.count else { break }
            out.append(contentsOf: bytes[start..<start + size])
            index = start + size + 2
        }
        return out
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text.removeFirst() }
        while text.last == set { text.removeLast() }
        return String(text)
    }
}
