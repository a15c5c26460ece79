import Foundation
import MeshBench
import MeshCore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Where an HTTP/1.1 answer ends: lengths, chunks, split reads, bad and oversized input.
@Suite struct HTTPResponseParserTests {
    func parse(_ text: String) throws -> HTTPResponseParser.Outcome { try HTTPResponseParser.parse(Array(text.utf8)) }

    @Test func contentLengthAnswersCompleteOnlyWithTheirWholeBody() throws {
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-LENGTH:  7 \r\n\r\n{\"a\":1}"
        #expect(try parse(answer) == .complete(status: 200, length: answer.utf8.count, close: false))
        #expect(try parse(String(answer.dropLast())) == .incomplete)
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n") == .incomplete)
        // A second answer after the first is not part of it.
        #expect(try parse(answer + "HTTP/1.1 500 X\r\n") == .complete(status: 200, length: answer.utf8.count, close: false))
    }

    @Test func chunkedAnswersEndAtTheLastChunk() throws {
        let answer = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4;ext=1\r\nWiki\r\nA\r\n0123456789\r\n0\r\n\r\n"
        #expect(try parse(answer) == .complete(status: 201, length: answer.utf8.count, close: true))
        for cut in [1, 3, 7, 20] { #expect(try parse(String(answer.dropLast(cut))) == .incomplete) }
    }

    @Test func answersWithoutABodyNeedNoLength() throws {
        let answer = "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n"
        #expect(try parse(answer) == .complete(status: 204, length: answer.utf8.count, close: false))
    }

    @Test func badAnswersAreErrors() {
        for bad in [
            "HTTP/2 200 OK\r\n\r\n", "SMTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            #expect(throws: MeshError.self, "\(bad.debugDescription)") { try parse(bad) }
        }
    }

    @Test func oversizedAnswersAreRefused() {
        let huge = "HTTP/1.1 200 OK\r\nContent-Length: \(HTTPResponseParser.maxResponseBytes)\r\n\r\n"
        #expect { try parse(huge) } throws: { ($0 as? MeshError)?.code == .tooLarge }
        let endlessHead = [UInt8]("HTTP/1.1 200 OK\r\nX: ".utf8) + [UInt8](repeating: 65, count: HTTPResponseParser.maxResponseBytes)
        #expect { try HTTPResponseParser.parse(endlessHead) } throws: { ($0 as? MeshError)?.code == .tooLarge }
    }
}

/// The load client against a small keep-alive HTTP server of the test's own: many requests
/// over few connections, statuses, a server that closes, a server that never answers.
@Suite(.serialized) struct HTTPLoadClientTests {
    /// Answers `GET /ok` 200 (keep-alive), `/fail` 503, `/close` 200 then closes, `/hang`
    /// never; counts the connections it accepted.
    final class TinyServer: @unchecked Sendable {
        let port: Int
        let accepted = Atomic<Int>(0)
        /// `/hang` requests received (never answered).
        let hanging = Atomic<Int>(0)
        private let listener: Int32

        init() throws {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.listener = listener
            var one: Int32 = 1
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(listener, 64) == 0 else { throw MeshError(.internalError, "cannot listen") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
            }
            port = Int(UInt16(bigEndian: address.sin_port))
            Thread { [self] in
                while true {
                    let client = accept(listener, nil, nil)
                    guard client >= 0 else { return }
                    accepted.add(1, ordering: .relaxed)
                    Thread { Self.serve(client, onHang: { self.hanging.add(1, ordering: .relaxed) }) }.start()
                }
            }.start()
        }

        static func serve(_ client: Int32, onHang: () -> Void) {
            defer { close(client) }
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(client, &chunk, chunk.count, 0)
                guard count > 0 else { return }
                buffer += chunk[0..<count]
                while let end = (0..<max(0, buffer.count - 3)).first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10 }) {
                    let head = String(decoding: buffer[0..<end], as: UTF8.self)
                    buffer.removeFirst(end + 4)
                    let path = head.split(separator: " ").dropFirst().first ?? ""
                    let answer: String
                    switch path {
                    case "/ok": answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    case "/fail": answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                    case "/close": answer = "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                    default:  // /hang
                        onHang()
                        continue
                    }
                    _ = answer.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    if path == "/close" { return }
                }
            }
        }

        func stop() {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
    }

    func request(_ client: HTTPLoadClient, _ path: String) -> [UInt8] {
        HTTPLoadClient.Request(method: "GET", path: path).bytes(host: client.host, port: client.port)
    }

    @Test func manyRequestsShareFewConnections() async throws {
        let server = try TinyServer()
        defer { server.stop() }
        let client = try HTTPLoadClient(url: "http://127.0.0.1:\(server.port)", connections: 4)
        defer { client.close() }
        let ok = request(client, "/ok")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<2_000 { group.addTask { try await client.send(ok) } }
            try await group.waitForAll()
        }
        #expect(server.accepted.load(ordering: .relaxed) == 4)
    }

    @Test func statusesAndClosedConnections() async throws {
        let server = try TinyServer()
        defer { server.stop() }
        let client = try HTTPLoadClient(url: "http://127.0.0.1:\(server.port)", connections: 1)
        await #expect { try await client.send(request(client, "/fail")) } throws: { ($0 as? HTTPLoadClient.StatusError)?.status == 503 }
        // The server closes after this answer: the next request opens a new connection.
        try await client.send(request(client, "/close"))
        try await client.send(request(client, "/ok"))
        #expect(server.accepted.load(ordering: .relaxed) == 2)
        client.close()
        await #expect { try await client.send(request(client, "/ok")) } throws: { ($0 as? MeshError)?.code == .unavailable }
    }

    @Test func aRequestWaitingForAnAnswerFailsWhenTheClientCloses() async throws {
        let server = try TinyServer()
        defer { server.stop() }
        let client = try HTTPLoadClient(url: "http://127.0.0.1:\(server.port)", connections: 1)
        let hang = request(client, "/hang")
        let queued = request(client, "/ok")
        let first = Task { try await client.send(hang) }
        // The only connection is busy with /hang before the second request is sent.
        for _ in 0..<500 where server.hanging.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(server.hanging.load(ordering: .relaxed) == 1)
        let second = Task { try await client.send(queued) }  // waits for the only connection
        try await Task.sleep(for: .milliseconds(200))
        client.close()
        await #expect { try await first.value } throws: { ($0 as? MeshError)?.code == .unavailable }
        await #expect { try await second.value } throws: { ($0 as? MeshError)?.code == .unavailable }
    }

    @Test func nothingListeningIsUnavailable() async throws {
        let server = try TinyServer()
        let port = server.port
        server.stop()
        let client = try HTTPLoadClient(url: "http://127.0.0.1:\(port)", connections: 2)
        defer { client.close() }
        await #expect { try await client.send(request(client, "/ok")) } throws: { ($0 as? MeshError)?.code == .unavailable }
        #expect(throws: MeshError.self) { try HTTPLoadClient(url: "https://127.0.0.1:1", connections: 1) }
    }
}
