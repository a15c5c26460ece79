import Logging
import MeshCore
import NIOHTTP1

/// `http`: POSTs each action's JSON payload to a configured URL — for example an
/// OpenAI-compatible `/v1/chat/completions` endpoint — and answers with the response body.
/// Stateless.
///
/// ```json
/// config: {"url": "http://llm-proxy:8080/v1/chat/completions",
///          "headers": {"Authorization": "Bearer sk-…"},  // sent as given; never logged or shown
///          "timeoutMs": 30000,          // per attempt; default 30 s, at most 10 min; never past the action's deadline
///          "retries": 2,                // extra attempts on 5xx or connection errors; default 2, at most 10
///          "backoffMs": 200,            // first backoff; doubles per retry with full jitter, at most 10 s
///          "maxResponseBytes": 1048576} // default 1 MiB, at most 16 MiB
/// any action, JSON payload (empty: {}) → the 2xx response body, as received
/// ```
/// Only `http://` is supported: reach https endpoints through a TLS-terminating proxy
/// (a sidecar), or add TLS (swift-nio-ssl) in a later change. Each attempt opens its own
/// connection (`Connection: close`); the action name is sent as `X-Mesh-Action`.
///
/// Answers: 2xx → the body; 429 → `busy` (with the server's `Retry-After` when given, no
/// retry); other 4xx → `invalid_argument` naming the status; 5xx or a connection failure
/// after the last retry → `unavailable`; the attempt's timeout → `timeout` (not retried: the
/// server may still be working on it); a body over the cap → `too_large`. Messages show
/// only `http://host:port`, never the path, query, headers or bodies.
public struct HTTPKind: AgentBehavior {
    /// The registered name, `http`.
    public static let kindName = AgentKindName.http

    public struct Configuration: Decodable, Sendable {
        public var url: String
        public var headers: [String: String]?
        public var timeoutMs: Int?
        public var retries: Int?
        public var backoffMs: Int?
        public var maxResponseBytes: Int?
    }

    let target: OneShotHTTP.Target
    let headers: [(String, String)]
    let timeout: Duration
    let retries: Int
    let backoff: Duration
    let maxResponseBytes: Int

    /// Headers the client sets itself.
    static let reserved: Set<String> = ["host", "content-length", "connection", "transfer-encoding", "upgrade", "te", "trailer"]

    public init(configuration: Configuration, setup: AgentSetup) throws {
        target = try OneShotHTTP.parse(configuration.url)
        var headers: [(String, String)] = []
        for (name, value) in (configuration.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard Self.isToken(name), !Self.reserved.contains(name.lowercased()) else {
                throw MeshError(.invalidArgument, "http config: header name \(String(reflecting: Check.shown(name))) is not allowed")
            }
            guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7f) }) else {
                // The value is a secret: name the header, never show the value.
                throw MeshError(.invalidArgument, "http config: the value of header \(name) contains control characters")
            }
            headers.append((name, value))
        }
        self.headers = headers
        timeout = .milliseconds(try Check.range(configuration.timeoutMs, "timeoutMs", in: 1...600_000, default: 30_000, kind: "http"))
        retries = try Check.range(configuration.retries, "retries", in: 0...10, default: 2, kind: "http")
        backoff = .milliseconds(try Check.range(configuration.backoffMs, "backoffMs", in: 0...10_000, default: 200, kind: "http"))
        maxResponseBytes = try Check.range(configuration.maxResponseBytes, "maxResponseBytes", in: 1...(16 << 20), default: 1 << 20, kind: "http")
    }

    public func mayChangeState(_ action: String) -> Bool { false }

    public func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        let body = payload.isEmpty ? Array("{}".utf8) : payload
        guard JSONCoding.isJSON(body) else { throw MeshError(.invalidArgument, "http: the payload must be one JSON document") }
        var headers = self.headers
        if action.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) { headers.append(("X-Mesh-Action", String(action.prefix(128)))) }
        let logger = context.logger
        var attempt = 0
        var delay = backoff
        while true {
            attempt += 1
            let failure: MeshError
            do {
                let response = try await OneShotHTTP.post(
                    target, headers: headers, body: body, deadline: context.deadline(within: timeout), maxResponseBytes: maxResponseBytes)
                switch response.status {
                case 200..<300:
                    return response.body
                case 429:
                    let hint = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds(min($0, 3600)) }
                    throw MeshError(.busy, "http: \(target.origin) answered HTTP 429 (rate limited)", retryAfter: hint ?? .seconds(1))
                case 500..<600:
                    failure = MeshError(.unavailable, "http: \(target.origin) answered HTTP \(response.status) after \(attempt) attempt(s)", retryAfter: .seconds(1))
                default:
                    throw MeshError(.invalidArgument, "http: \(target.origin) answered HTTP \(response.status)")
                }
            } catch let error as OneShotHTTP.Failure {
                switch error {
                case .timedOut: throw MeshError(.timeout, "http: \(target.origin) did not answer in time (attempt \(attempt))")
                case .tooLarge: throw MeshError(.tooLarge, "http: the response of \(target.origin) exceeds \(maxResponseBytes) bytes")
                case .cancelled: throw CancellationError()
                case .connection(let reason):
                    failure = MeshError(.unavailable, "http: \(target.origin) could not be reached after \(attempt) attempt(s) (\(reason))", retryAfter: .seconds(1))
                }
            }
            logger.debug(
                "http attempt failed", metadata: ["mesh.http.origin": "\(target.origin)", "mesh.http.attempt": "\(attempt)", "mesh.error": "\(failure.code)"])
            guard attempt <= retries else { throw failure }
            let pause = Duration.nanoseconds(Int64.random(in: 0...max(1, delay.totalNanoseconds)))
            guard ContinuousClock.now + pause < context.deadline(within: nil) else { throw failure }
            try await Task.sleep(for: pause)
            delay = min(delay * 2, .seconds(10))
        }
    }

    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
    }
}
