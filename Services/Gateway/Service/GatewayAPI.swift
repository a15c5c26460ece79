import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Metrics
import NIOCore
import Nats
import Store
import Synchronization

/// The request path: authentication, role check, rate limit, timeout, the operation,
/// the one error shape, audit and metrics — for every route of ``GatewayRoutes``.
final class GatewayAPI: Sendable {
    let options: GatewayOptions
    let nats: NatsConnection
    let store: Store
    let keys: APIKeyStore
    let audit: AuditLog
    let registry: RegistryClient
    let readiness: RegistryClient
    let actions: ActionClient
    let supervisor: SupervisorClient
    let tasks: TaskClient
    /// The metrics collector (alerts, summary, series).
    let metricsCollector: MetricsClient
    let live: LiveEvents
    let limiter: RateLimiter?
    /// The request timeout (`--request-timeout-ms`, 504) of every route that needs a role.
    let deadlines = RequestDeadlines()
    let logger: Logger
    let observability: Observability
    let startedAt: Date
    let liveness: PoolLiveness
    private let timers: [Operation: Metrics.Timer]
    private let counters = Mutex<[String: Counter]>([:])

    static let requestIDHeader = HTTPField.Name("x-request-id")!
    static let lastEventIDHeader = HTTPField.Name("last-event-id")!

    init(
        context: ServiceContext, options: GatewayOptions, store: Store, keys: APIKeyStore, audit: AuditLog, registry: RegistryClient,
        readiness: RegistryClient, actions: ActionClient, supervisor: SupervisorClient, tasks: TaskClient, live: LiveEvents, limiter: RateLimiter?
    ) {
        self.options = options
        self.nats = context.nats
        self.store = store
        self.keys = keys
        self.audit = audit
        self.registry = registry
        self.readiness = readiness
        self.actions = actions
        self.supervisor = supervisor
        self.tasks = tasks
        self.metricsCollector = MetricsClient(connection: context.nats, subjects: context.subjects)
        self.live = live
        self.limiter = limiter
        self.logger = context.logger
        self.observability = Observability.bootstrap(options: context.options)
        self.startedAt = context.startedAt
        self.liveness = context.liveness
        var timers: [Operation: Metrics.Timer] = [:]
        for operation in Operation.allCases {
            timers[operation] = Metrics.Timer(
                label: "mesh_gateway_request_duration_seconds", dimensions: [("operation", operation.rawValue)],
                preferredDisplayUnit: .seconds)
        }
        self.timers = timers
    }

    /// The router: every route of the table, plus the JSON error shape for unknown paths.
    func router() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        for route in GatewayRoutes.all {
            router.on(RouterPath(route.path), method: route.method) { [self] request, context in
                await respond(route, request, context)
            }
        }
        return router
    }

    // MARK: The request path

    func respond(_ route: GatewayRoute, _ request: Request, _ context: GatewayRequestContext) async -> Response {
        let started = ContinuousClock.now
        let requestID = Self.requestID(request.headers)
        var principal: Principal?
        var response: Response
        do {
            if route.role != nil {
                try await admit(route, authorization: request.headers[.authorization], principal: &principal)
                let caller = principal
                response = try await deadlines.run(timeout: .milliseconds(options.requestTimeoutMs)) { [self] in
                    try await handle(route, request, context, caller)
                }
            } else {
                response = try await handle(route, request, context, nil)
            }
        } catch {
            response = Self.errorResponse(failure(error, route, requestID: requestID))
        }
        response.headers[Self.requestIDHeader] = requestID
        record(
            route, status: Int(response.status.code), principal: principal, target: context.parameters.get("id"), requestID: requestID,
            started: started)
        return response
    }

    /// The request's `X-Request-ID` when it is safe to echo, else a new one.
    static func requestID(_ headers: HTTPFields) -> String {
        headers[requestIDHeader].flatMap { isSafeRequestID($0) ? $0 : nil } ?? TimeOrderedID.make()
    }

    /// The gate every route that needs a role passes (HTTP requests and WebSocket upgrades
    /// alike): the key from `authorization` (`Bearer <key>`), the role, the rate limit.
    /// - Parameter principal: set to the caller as soon as the key is known (so a 403 or 429
    ///   is audited with the key that was refused).
    /// - Throws: ``APIError`` 401, 403, 429 (+ Retry-After), or 503 when the key store cannot be asked.
    func admit(_ route: GatewayRoute, authorization: String?, principal: inout Principal?) async throws {
        guard let needed = route.role else { return }
        let caller = try await authenticate(authorization: authorization)
        principal = caller
        guard caller.role >= needed else { throw APIError.forbidden(needed, caller.role) }
        if let limiter, case .limited(let retryAfter) = limiter.take(key: caller.keyID) {
            throw APIError(
                .tooManyRequests, code: "rate_limited", "rate limit of \(options.rateLimit) requests/s for this key exceeded",
                retryAfterSeconds: max(1, Int(retryAfter.rounded(.up))))
        }
    }

    /// The ``APIError`` a failure is answered with; an internal error is logged first.
    func failure(_ error: any Error, _ route: GatewayRoute, requestID: String) -> APIError {
        let apiError = Self.apiError(error)
        if apiError.status == .internalServerError {
            logger.error(
                "request failed", metadata: ["mesh.http.operation": "\(route.operation.rawValue)", "error": "\(error)", "mesh.request.id": "\(requestID)"])
        }
        return apiError
    }

    /// After every answer (HTTP response or WebSocket upgrade): the audit record (mutations,
    /// 401 and 403 of routes that need a role), the latency and the request counter.
    func record(
        _ route: GatewayRoute, status: Int, principal: Principal?, target: String?, requestID: String, started: ContinuousClock.Instant
    ) {
        if route.role != nil, route.isMutation || status == 401 || status == 403 {
            audit.record(
                AuditEntry(
                    occurredAt: Date(), keyID: principal?.keyID, keyName: principal?.name, action: "\(route.method.rawValue) \(route.path)",
                    target: target.map { String($0.prefix(128)) }, outcome: Self.outcome(status), status: status, requestID: requestID))
        }
        let elapsed = ContinuousClock.now - started
        timers[route.operation]?.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        counter(route.operation, status).increment()
    }

    private func counter(_ operation: Operation, _ status: Int) -> Counter {
        let key = "\(operation.rawValue) \(status)"
        return counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: "mesh_gateway_requests_total", dimensions: [("operation", operation.rawValue), ("status", String(status))])
            counters[key] = counter
            return counter
        }
    }

    static func outcome(_ status: Int) -> String {
        switch status {
        case 101, 200..<400: "ok"
        case 401: "unauthenticated"
        case 403: "forbidden"
        case 429: "rate_limited"
        default: "failed"
        }
    }

    /// The caller's key from an `Authorization: Bearer <key>` value.
    /// - Throws: ``APIError`` 401 when missing or unknown; 503 when the key store cannot be asked.
    func authenticate(authorization: String?) async throws -> Principal {
        guard let secret = authorization.flatMap(Self.bearerSecret) else { throw APIError.unauthenticated }
        let principal: Principal?
        do { principal = try await keys.principal(secret: secret) } catch {
            logger.warning("API key lookup failed", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "the key store is unavailable", retryAfterSeconds: 1)
        }
        guard let principal else { throw APIError.unauthenticated }
        return principal
    }

    /// The key of an `Authorization: Bearer <key>` value (the scheme in any case, blanks
    /// around the key ignored; at most 256 bytes in all), or nil. Byte by byte: Foundation's
    /// trimming took 6 % of the gateway's CPU on actions.
    static func bearerSecret(_ header: String) -> String? {
        let bytes = header.utf8
        guard bytes.count <= 256, bytes.count > 7, bytes.dropFirst(6).first == UInt8(ascii: " "),
            bytes.prefix(6).elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 })
        else { return nil }
        let blank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let secret = bytes.dropFirst(7).drop(while: blank)
        guard let end = secret.lastIndex(where: { !blank($0) }) else { return nil }
        return String(Substring(secret[...end]))
    }

    static func isSafeRequestID(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy { $0 == 45 || $0 == 95 || $0 == 46 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }
    }

    static func apiError(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError: return error
        case let error as MeshError: return APIError(error)
        case let error as StoreError where error.isTransient || error.code == .closed:
            return APIError(.serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "PostgreSQL is unavailable", retryAfterSeconds: 1)
        case let error as any HTTPResponseError where error.status == .contentTooLarge:
            return APIError(.contentTooLarge, code: MeshError.Code.tooLarge.rawValue, "request body too large")
        default:
            return APIError(.internalServerError, code: MeshError.Code.internalError.rawValue, "internal error")
        }
    }

    static func errorResponse(_ error: APIError) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retry = error.retryAfterSeconds { headers[.retryAfter] = String(retry) }
        if error.status == .contentTooLarge { headers[.connection] = "close" }
        return Response(status: error.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: error.body)))
    }

    // MARK: Operations

    func handle(_ route: GatewayRoute, _ request: Request, _ context: GatewayRequestContext, _ principal: Principal?) async throws -> Response {
        switch route.operation {
        case .dashboard:
            return Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .cacheControl: "no-cache",
                    .contentSecurityPolicy: "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'",
                ],
                body: ResponseBody(byteBuffer: ByteBuffer(string: Dashboard.html)))
        case .health:
            let (status, body) = health()
            return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        case .ready:
            return try await ready()
        case .metrics:
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: observability.prometheusExposition())))
        case .openAPI:
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        case .listAgents:
            try requireNATS()
            return try await listAgents(request)
        case .createAgent:
            try requireNATS()
            let spec = try AgentSpecDocument.spec(object: try await Self.jsonObject(request, limit: options.maxBodyBytes))
            let record = try await registry.create(spec)
            var response = Self.json(AgentSpecDocument.object(record: record), status: .created)
            response.headers[.location] = "/api/v1/agents/\(record.spec.id)"
            return response
        case .getAgent:
            let id = try Self.agentID(context)
            try requireNATS()
            return Self.json(AgentSpecDocument.object(record: try await registry.get(id)))
        case .updateAgent:
            let id = try Self.agentID(context)
            try requireNATS()
            return try await updateAgent(id, request)
        case .deleteAgent:
            let id = try Self.agentID(context)
            let revision = try Self.queryInt(request, "revision", range: 0...Int.max) ?? 0
            try requireNATS()
            return Self.json(AgentSpecDocument.object(record: try await registry.delete(id, expectedRevision: UInt64(revision))))
        case .invokeAction:
            let id = try Self.agentID(context)
            return try await invoke(id, request, context)
        case .agentEvents:
            let id = try Self.agentID(context)
            return try await events(id, request)
        case .listNodes:
            try requireNATS()
            let reply = try await supervisor.nodes()
            return Self.json(["items": reply.nodes.map(Self.object(node:)), "leader": reply.leaderId])
        case .drainNode, .undrainNode:
            guard let raw = context.parameters.get("id"), let id = try? NodeID(raw) else {
                throw APIError(.badRequest, code: MeshError.Code.invalidID.rawValue, "invalid node id")
            }
            try requireNATS()
            let (node, candidates) = route.operation == .drainNode ? try await supervisor.drain(id) : try await supervisor.undrain(id)
            return Self.json(["node": Self.object(node: node), "candidates": candidates])
        case .submitTask: return try await submitTask(request)
        case .listTasks: return try await listTasks(request)
        case .getTask: return try await getTask(context)
        case .cancelTask: return try await cancelTask(context)
        case .listDeadLetters: return try await listDeadLetters(request)
        case .retryDeadLetter: return try await retryDeadLetter(context)
        case .liveEvents:
            try requireNATS()
            return try await liveEvents(request, context)
        case .listKeys:
            let items: [[String: Any]] = try await keys.list().map(Self.object(key:))
            return Self.json(["items": items])
        case .createKey:
            return try await createKey(request, principal)
        case .revokeKey:
            guard let id = context.parameters.get("id"), Identifier.isValid(id) else {
                throw APIError(.badRequest, code: MeshError.Code.invalidID.rawValue, "invalid key id")
            }
            guard try await keys.revoke(id: id) else {
                throw APIError(.notFound, code: MeshError.Code.notFound.rawValue, "no active key \(id)")
            }
            return Self.json(["id": id, "revoked": true])
        case .listAlerts, .metricsSummary, .metricsSeries:
            try requireNATS()
            return try await metricsOperation(route.operation, request)
        }
    }

    /// 503 at once when NATS is not connected: no request waits for a reconnect.
    func requireNATS() throws {
        guard nats.isConnected else { throw APIError.natsDown }
    }

    func ready() async throws -> Response {
        guard nats.isConnected else {
            throw APIError(.serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "not ready: NATS is not connected", retryAfterSeconds: 1)
        }
        do { _ = try await readiness.list(limit: 1) } catch {
            throw APIError(
                .serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "not ready: the registry does not answer (\(error.code))",
                retryAfterSeconds: 1)
        }
        return Self.json(["status": "ready", "checks": ["nats": "ok", "registry": "ok"]])
    }

    func listAgents(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let selector = query["selector"].map(String.init) ?? ""
        guard selector.utf8.count <= 4_096 else { throw APIError.badRequest("selector is longer than 4096 bytes") }
        var node: String?
        if let raw = query["node"], !raw.isEmpty {
            guard Identifier.isValid(raw) else { throw APIError(.badRequest, code: MeshError.Code.invalidID.rawValue, "node must be a node id") }
            node = String(raw)
        }
        var status: AgentStatus?
        if let raw = query["status"], !raw.isEmpty {
            guard let parsed = AgentSpecDocument.status(named: String(raw)) else {
                throw APIError.badRequest("status must be one of pending, starting, running, stopping, stopped, failed, restarting")
            }
            status = parsed
        }
        let cursor = query["cursor"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        guard (cursor?.utf8.count ?? 0) <= 1_024 else { throw APIError.badRequest("cursor is longer than 1024 bytes") }
        let limit = try Self.queryInt(request, "limit", range: 1...RegistryClient.maxLimit) ?? RegistryClient.defaultLimit
        let page = try await registry.list(selector: selector, node: node, status: status, cursor: cursor, limit: limit)
        return Self.json(["items": page.records.map { AgentSpecDocument.object(record: $0) }, "next_cursor": page.nextCursor.map { $0 as Any } ?? NSNull()])
    }

    /// Keys of a record that are state, not spec: accepted (and ignored) in an update body,
    /// so a record read with GET can be sent back changed.
    static let readOnlyKeys: Set<String> = [
        "generation", "status", "node", "shard", "shard_epoch", "restart_count", "last_error", "created_at", "updated_at", "started_at",
    ]

    func updateAgent(_ id: AgentID, _ request: Request) async throws -> Response {
        var object = try await Self.jsonObject(request, limit: options.maxBodyBytes)
        var revision: UInt64 = 0
        if let value = object.removeValue(forKey: "revision"), !(value is NSNull) {
            guard !(value is String), let number = value as? NSNumber, number.doubleValue >= 0, number.doubleValue == number.doubleValue.rounded()
            else { throw APIError.badRequest("revision must be a whole number") }
            revision = number.uint64Value
        }
        if let header = request.headers[.ifMatch] {
            let trimmed = header.trimmingCharacters(in: CharacterSet(charactersIn: "\" W/"))
            guard let value = UInt64(trimmed) else { throw APIError.badRequest("If-Match must be a revision number") }
            revision = value
        }
        for key in Self.readOnlyKeys { object[key] = nil }
        if let bodyID = object["id"] {
            guard (bodyID as? String) == id.rawValue else { throw APIError.badRequest("id in the body must match the path") }
        } else {
            object["id"] = id.rawValue
        }
        let spec = try AgentSpecDocument.spec(object: object)
        return Self.json(AgentSpecDocument.object(record: try await registry.update(spec, expectedRevision: revision)))
    }

    func invoke(_ id: AgentID, _ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        guard let name = context.parameters.get("name"), Self.isValidActionName(name) else {
            throw APIError.badRequest("action name must be 1-128 characters of [A-Za-z0-9_.:-]")
        }
        let maxTimeout = options.requestTimeoutMs
        let timeoutMs = try Self.queryInt(request, "timeout_ms", range: 100...maxTimeout) ?? min(options.actionTimeoutMs, maxTimeout)
        let payload = try await Self.body(request, limit: options.maxBodyBytes)
        try requireNATS()
        let reply = try await actions.act(id, action: name, payload: payload, timeout: .milliseconds(timeoutMs))
        return Response(status: .ok, headers: [.contentType: Self.contentType(reply: reply)], body: ResponseBody(byteBuffer: ByteBuffer(bytes: reply)))
    }

    /// The content type of an action's answer: JSON when it parses as JSON.
    static func contentType(reply: [UInt8]) -> String {
        JSONSyntax.isValid(reply) ? "application/json" : "application/octet-stream"
    }

    /// The `/health` answer, written by hand: the liveness probe is the gateway's most frequent
    /// request. 503 while the process's task pool is stalled (``PoolLiveness``).
    func health() -> (HTTPResponse.Status, [UInt8]) {
        let uptime = Int(Date().timeIntervalSince(startedAt))
        guard liveness.isLive else { return (.serviceUnavailable, Array(#"{"status":"unavailable","uptime_seconds":\#(uptime)}"#.utf8)) }
        return (.ok, Array(#"{"status":"ok","uptime_seconds":\#(uptime)}"#.utf8))
    }

    // MARK: The fast path (FastPathHandler)

    /// The `Server` header of every answer.
    static let serverName = "mesh-gateway"
    private static let healthRoute = GatewayRoutes.all.first { $0.operation == .health }!
    private static let invokeRoute = GatewayRoutes.all.first { $0.operation == .invokeAction }!

    /// Whether ``FastPathHandler`` answers the request of `head` itself, and how; nil sends
    /// it to the router. Only requests whose answer needs nothing the router adds qualify
    /// (see ``FastPathHandler``); every error the router would answer goes to the router.
    /// An action admitted here has taken its rate-limit token.
    func fastRoute(_ head: HTTPRequest) -> FastRoute? {
        guard let target = head.path, head.headerFields[.expect] == nil else { return nil }
        var closes = false
        if let connection = head.headerFields[.connection] {
            // `keep-alive` (HTTP/1.1's default) or `close`; upgrades go to the router.
            let isKeepAlive = connection.utf8.elementsEqual("keep-alive".utf8, by: { $0 | 0x20 == $1 })
            closes = connection.utf8.elementsEqual("close".utf8, by: { $0 | 0x20 == $1 })
            guard isKeepAlive || closes else { return nil }
        }
        let started = ContinuousClock.now
        if head.method == .get, target == "/health" {
            return FastRoute(kind: .health, head: head, closes: closes, requestID: Self.requestID(head.headerFields), started: started)
        }
        guard head.method == .post, target.utf8.starts(with: "/api/v1/agents/".utf8), !target.utf8.contains(UInt8(ascii: "%")) else {
            return nil
        }
        let pathAndQuery = target.utf8.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false)
        var timeoutMs = min(options.actionTimeoutMs, options.requestTimeoutMs)
        if pathAndQuery.count == 2 {
            // Only `timeout_ms=<n>` within its range; any other query is the router's.
            let query = pathAndQuery[1]
            let name = "timeout_ms=".utf8
            guard query.starts(with: name), query.count <= name.count + 6, let value = Int(String(Substring(query.dropFirst(name.count)))),
                (100...options.requestTimeoutMs).contains(value)
            else { return nil }
            timeoutMs = value
        }
        // "", "api", "v1", "agents", id, "actions", name
        let parts = pathAndQuery[0].split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 7, parts[5].elementsEqual("actions".utf8), let id = try? AgentID(String(Substring(parts[4]))) else { return nil }
        let name = String(Substring(parts[6]))
        guard Self.isValidActionName(name) else { return nil }
        if let length = head.headerFields[.contentLength] {
            guard let bytes = Int(length), bytes <= options.maxBodyBytes else { return nil }
        }
        guard let needed = Self.invokeRoute.role, let secret = head.headerFields[.authorization].flatMap(Self.bearerSecret),
            let principal = keys.cachedPrincipal(secret: secret), principal.role >= needed, nats.isConnected
        else { return nil }
        if let limiter, case .limited = limiter.take(key: principal.keyID) { return nil }
        return FastRoute(
            kind: .action(id, name: name, timeoutMs: timeoutMs, principal: principal), head: head, closes: closes,
            requestID: Self.requestID(head.headerFields), started: started)
    }

    /// Answers a request ``fastRoute(_:)`` admitted: `completion` runs once, on the thread
    /// that has the answer, after the audit record and the metrics.
    func answer(_ route: FastRoute, body: [UInt8], completion: @escaping @Sendable (FastResponse) -> Void) {
        switch route.kind {
        case .health:
            let (status, body) = health()
            record(Self.healthRoute, status: Int(status.code), principal: nil, target: nil, requestID: route.requestID, started: route.started)
            completion(FastResponse(status: status, contentType: "application/json", body: body, requestID: route.requestID))
        case .action(let id, let name, let timeoutMs, let principal):
            actions.act(id, action: name, payload: body, timeout: .milliseconds(timeoutMs)) { [self] result in
                let response: FastResponse
                switch result {
                case .success(let reply):
                    response = FastResponse(status: .ok, contentType: Self.contentType(reply: reply), body: reply, requestID: route.requestID)
                case .failure(let error):
                    let apiError = failure(error, Self.invokeRoute, requestID: route.requestID)
                    response = FastResponse(
                        status: apiError.status, contentType: "application/json", body: apiError.body, retryAfterSeconds: apiError.retryAfterSeconds,
                        requestID: route.requestID)
                }
                record(
                    Self.invokeRoute, status: Int(response.status.code), principal: principal, target: id.rawValue, requestID: route.requestID,
                    started: route.started)
                completion(response)
            }
        }
    }

    static func isValidActionName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || [45, 46, 58, 95].contains($0) }
    }

    func events(_ id: AgentID, _ request: Request) async throws -> Response {
        let limit = try Self.queryInt(request, "limit", range: 1...1_000) ?? 100
        var after = (time: "-infinity", event: "")
        if let raw = request.uri.queryParameters["cursor"], !raw.isEmpty {
            guard let cursor = TimelineCursor.decode(String(raw)) else { throw APIError.badRequest("invalid cursor") }
            after = cursor
        }
        let rows = try await Self.timeline(store: store, id: id, after: after, limit: limit)
        var items: [[String: Any]] = []
        var last: (String, String)?
        for row in rows {
            let eventID: String = try row.decode("event_id")
            var item: [String: Any] = [
                "event_id": eventID, "type": try row.decode("type", String.self), "reason": try row.decode("reason", String.self),
                "occurred_at": rfc3339(try row.decode("occurred_at")),
            ]
            if let node: String = try row.decode("node_id") { item["node"] = node }
            let attributes: String = try row.decode("attributes")
            item["attributes"] = (try? JSONSerialization.jsonObject(with: Data(attributes.utf8))) ?? [:]
            items.append(item)
            last = (try row.decode("position"), eventID)
        }
        let next: Any = rows.count == limit ? last.map { TimelineCursor.encode(time: $0.0, event: $0.1) } ?? NSNull() : NSNull()
        return Self.json(["items": items, "next_cursor": next])
    }

    func liveEvents(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let (filter, since) = try Self.liveEventQuery(request.uri, headers: request.headers)
        return try await live.response(filter: filter, since: since, channel: context.channel)
    }

    /// The filter (`domain`, `type`, `agent`) and resume point (`since`, else `Last-Event-ID`)
    /// of a live event request, SSE or WebSocket.
    /// - Throws: ``APIError`` 400 for a malformed filter or sequence.
    static func liveEventQuery(_ uri: URI, headers: HTTPFields) throws -> (filter: EventFilter, since: UInt64?) {
        let query = uri.queryParameters
        var filter = EventFilter()
        for (name, value) in [("domain", query["domain"]), ("type", query["type"])] {
            guard let value, !value.isEmpty else { continue }
            guard Identifier.isValid(value) else { throw APIError.badRequest("\(name) must match [a-z0-9][a-z0-9_-]{0,62}") }
            if name == "domain" { filter.domain = String(value) } else { filter.type = String(value) }
        }
        if let agent = query["agent"], !agent.isEmpty { filter.agent = try AgentID(String(agent)).rawValue }
        var since: UInt64?
        if let raw = query["since"], !raw.isEmpty {
            guard let value = UInt64(raw) else { throw APIError.badRequest("since must be a stream sequence number") }
            since = value
        } else if let raw = headers[lastEventIDHeader], !raw.isEmpty {
            guard let value = UInt64(raw.trimmingCharacters(in: .whitespaces)) else { throw APIError.badRequest("Last-Event-ID must be a stream sequence number") }
            since = value
        }
        return (filter, since)
    }

    /// One page of `agent_events` after `after`; a cursor PostgreSQL cannot read is a 400.
    static func timeline(store: Store, id: AgentID, after: (time: String, event: String), limit: Int) async throws -> [Row] {
        let result: Result<[Row], StoreError>
        do {
            result = .success(
                try await store.query(
                    """
                    SELECT event_id, type, node_id, reason, attributes::text AS attributes, occurred_at, occurred_at::text AS position
                    FROM agent_events WHERE agent_id = $1 AND (occurred_at, event_id) > ($2::timestamptz, $3)
                    ORDER BY occurred_at, event_id LIMIT $4
                    """, [.text(id.rawValue), .text(after.time), .text(after.event), .int(Int64(limit))]))
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let rows): return rows
        case .failure(let error):
            if error.code == .queryFailed && !after.event.isEmpty { throw APIError.badRequest("invalid cursor") }
            throw error
        }
    }

    func createKey(_ request: Request, _ principal: Principal?) async throws -> Response {
        let object = try await Self.jsonObject(request, limit: 16 * 1024)
        if let unknown = object.keys.sorted().first(where: { !["role", "name"].contains($0) }) {
            throw APIError.badRequest("unknown key \(String(reflecting: String(unknown.prefix(64)))); allowed: name, role")
        }
        guard let roleName = object["role"] as? String, let role = Role(rawValue: roleName) else {
            throw APIError.badRequest("role is required: viewer, operator or admin")
        }
        let name = (object["name"] as? String) ?? "\(role.rawValue)-key"
        guard (1...64).contains(name.count), name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw APIError.badRequest("name must be 1-64 printable characters")
        }
        let (info, secret) = try await keys.create(name: name, role: role, createdBy: principal?.keyID)
        var object2 = Self.object(key: info)
        object2["secret"] = secret
        return Self.json(object2, status: .created)
    }

    static func object(node: NodeInfo) -> [String: Any] {
        var object: [String: Any] = [
            "node": node.nodeId, "instance": node.instanceId, "alive": node.alive, "draining": node.draining,
            "drain_requested": node.drainRequested, "capacity": Int(node.capacity), "load": node.load, "agents": Int(node.agentCount),
            "shards": node.shards.count, "version": node.buildVersion,
        ]
        if node.lastHeartbeatUnixMs > 0 {
            object["last_heartbeat"] = rfc3339(Date(timeIntervalSince1970: Double(node.lastHeartbeatUnixMs) / 1000))
        }
        return object
    }

    static func object(key: APIKeyInfo) -> [String: Any] {
        var object: [String: Any] = ["id": key.id, "name": key.name, "role": key.role.rawValue, "created_at": rfc3339(key.createdAt)]
        object["created_by"] = key.createdBy.map { $0 as Any } ?? NSNull()
        object["revoked_at"] = key.revokedAt.map { rfc3339($0) as Any } ?? NSNull()
        return object
    }

    // MARK: Helpers

    static func agentID(_ context: GatewayRequestContext) throws -> AgentID {
        try AgentID(context.parameters.get("id") ?? "")
    }

    static func queryInt(_ request: Request, _ name: String, range: ClosedRange<Int>) throws -> Int? {
        guard let raw = request.uri.queryParameters[Substring(name)], !raw.isEmpty else { return nil }
        guard let value = Int(raw), range.contains(value) else {
            throw APIError.badRequest("\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// The request body, at most `limit` bytes: a larger `Content-Length` is refused before
    /// reading, and a streamed body is counted as it arrives (413 past the limit).
    static func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw APIError.tooLarge(limit) }
        do {
            var buffer = try await request.body.collect(upTo: limit)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge(limit)
        }
    }

    static func jsonObject(_ request: Request, limit: Int) async throws -> [String: Any] {
        let bytes = try await body(request, limit: limit)
        guard !bytes.isEmpty else { throw APIError.badRequest("a JSON object body is required") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw APIError.badRequest("the body must be a JSON object")
        }
        return object
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonBytes(object))))
    }

    /// A response document: ``JSONText`` (keys sorted), or `JSONSerialization` for a value
    /// it does not take.
    static func jsonBytes(_ object: Any) -> [UInt8] {
        JSONText.bytes(object) ?? (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map(Array.init) ?? Array("{}".utf8)
    }
}

/// The opaque cursor of the agent timeline: base64url of `<occurred_at>\n<event_id>`.
enum TimelineCursor {
    static func encode(time: String, event: String) -> String {
        Data("\(time)\n\(event)".utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> (time: String, event: String)? {
        guard text.utf8.count <= 512 else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { return nil }
        let parts = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64, !parts[1].isEmpty, parts[1].count <= 128,
            parts[0].utf8.allSatisfy({ (48...57).contains($0) || [32, 43, 45, 46, 58, 84].contains($0) }),
            parts[1].utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || [45, 46, 95].contains($0) })
        else { return nil }
        return (String(parts[0]), String(parts[1]))
    }
}

/// The request context: Hummingbird's core context plus the connection's channel (so a
/// live-event stream can close the connection of a client that stopped reading).
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        channel = source.channel
    }
}

/// Turns the router's own errors (no such path, wrong method) into the JSON error shape.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            let code: String =
                switch error.status {
                case .notFound: MeshError.Code.notFound.rawValue
                case .methodNotAllowed: "method_not_allowed"
                case .contentTooLarge: MeshError.Code.tooLarge.rawValue
                default: error.status.code < 500 ? MeshError.Code.invalidArgument.rawValue : MeshError.Code.internalError.rawValue
                }
            let message = error.status == .notFound ? "no such endpoint: \(request.method.rawValue) \(request.uri.path.prefix(200))" : error.status.reasonPhrase
            return GatewayAPI.errorResponse(APIError(error.status, code: code, message))
        }
    }
}
