#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal blocking HTTP/1.0 GET — for container health probes (`meshctl probe`) and
/// tests, where pulling in an HTTP client library is not worth it.
public enum LocalHTTP {
    /// A response: status code and body bytes (at most `maxBytes`).
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// GETs `path` from `host:port`.
    /// - Throws: ``LocalServerError`` when the host cannot be reached or does not speak HTTP.
    public static func get(host: String, port: Int, path: String, timeoutMs: Int = 2_000, maxBytes: Int = 16 << 20) throws -> Response {
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
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\nUser-Agent: mesh\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw LocalServerError("cannot send to \(host):\(port)")
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while response.count < maxBytes {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received <= 0 { break }
            response.append(contentsOf: chunk[0..<received])
        }
        guard let headerEnd = response.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw LocalServerError("no HTTP answer from \(host):\(port)")
        }
        let statusLine = String(decoding: response[..<headerEnd.lowerBound], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw LocalServerError("not an HTTP answer from \(host):\(port)")
        }
        return Response(status: status, body: Array(response[headerEnd.upperBound...]))
    }
}
