public import Nats
public import Foundation
public import Logging

import Synchronization

/// NATS-micro-compatible service discovery, written on the safe `Nats` API because the C
/// client has no micro framework.
///
/// A service answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`, each also with the
/// service name and with name and instance id as extra tokens, in the JSON shapes of the
/// NATS micro protocol (`io.nats.micro.v1.*_response`), so `nats micro ls` and any micro
/// client see every mesh process and its endpoints.
///
/// ```swift
/// let micro = try MicroService(connection: nats, config: .init(name: "mesh-registry", version: "0.1.0", id: instanceID), logger: logger)
/// let get = try micro.addEndpoint(name: "get", subject: "mesh.reg.*.get", queueGroup: "registry") { request in
///     request.respond(payload: …)
/// }
/// ```
public final class MicroService: Sendable {
    /// Discovery verbs.
    public enum Verb: String, Sendable, CaseIterable { case ping = "PING", info = "INFO", stats = "STATS" }

    /// The service's identity as discovery reports it.
    public let config: MicroServiceConfig
    /// When the service started (reported by STATS).
    public let started: Date

    private let connection: NatsConnection
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var discovery: [NatsHandlerSubscription] = []
        var endpoints: [MicroEndpoint] = []
        var stopped = false
    }

    /// Starts answering discovery requests.
    /// - Throws: ``MicroError`` when the name, version or id breaks the micro rules, or a
    ///   `NatsError` when subscribing fails.
    public init(connection: NatsConnection, config: MicroServiceConfig, logger: Logger) throws {
        try config.validate()
        self.config = config
        self.connection = connection
        self.logger = logger
        self.started = Date()
        var subscriptions: [NatsHandlerSubscription] = []
        do {
            for verb in Verb.allCases {
                for subject in Self.discoverySubjects(verb: verb, name: config.name, id: config.id) {
                    subscriptions.append(try connection.subscribe(subject, queue: nil) { [weak self] message in
                        self?.answer(verb, message)
                    })
                }
            }
        } catch {
            subscriptions.forEach { try? $0.unsubscribe() }
            throw error
        }
        state.withLock { $0.discovery = subscriptions }
    }

    /// The three subjects a verb is answered on: `$SRV.<VERB>`, `$SRV.<VERB>.<name>`, `$SRV.<VERB>.<name>.<id>`.
    public static func discoverySubjects(verb: Verb, name: String? = nil, id: String? = nil) -> [String] {
        var subjects = ["$SRV.\(verb.rawValue)"]
        if let name {
            subjects.append("$SRV.\(verb.rawValue).\(name)")
            if let id { subjects.append("$SRV.\(verb.rawValue).\(name).\(id)") }
        }
        return subjects
    }

    /// Adds an endpoint: subscribes `subject` (in `queueGroup`) and calls `handler` on the
    /// NATS delivery thread for each request, counting requests, errors and processing time.
    ///
    /// The handler must not block for long; for async work, hand the request off and call
    /// ``MicroEndpoint/record(processingTime:error:)`` when it completes instead.
    public func addEndpoint(
        name: String, subject: String, queueGroup: String? = "q", metadata: [String: String] = [:],
        handler: @escaping @Sendable (MicroRequest) -> Void
    ) throws -> MicroEndpoint {
        guard MicroServiceConfig.isValidName(name) else { throw MicroError("endpoint name must match [A-Za-z0-9_-]+") }
        let endpoint = MicroEndpoint(name: name, subject: subject, queueGroup: queueGroup, metadata: metadata)
        let connection = self.connection
        let subscription = try connection.subscribe(subject, queue: queueGroup) { [weak endpoint] message in
            guard let endpoint else { return }
            let start = ContinuousClock.now
            let request = MicroRequest(message: message, connection: connection, endpoint: endpoint)
            handler(request)
            endpoint.record(processingTime: ContinuousClock.now - start, error: nil)
        }
        endpoint.attach(subscription)
        state.withLock { $0.endpoints.append(endpoint) }
        return endpoint
    }

    /// Registers an endpoint served elsewhere (its own subscription), so discovery lists it
    /// and its statistics; the owner calls ``MicroEndpoint/record(processingTime:error:)``.
    public func registerEndpoint(name: String, subject: String, queueGroup: String? = nil, metadata: [String: String] = [:]) -> MicroEndpoint {
        let endpoint = MicroEndpoint(name: name, subject: subject, queueGroup: queueGroup, metadata: metadata)
        state.withLock { $0.endpoints.append(endpoint) }
        return endpoint
    }

    /// Stops answering discovery and unsubscribes every endpoint.
    public func stop() {
        let (discovery, endpoints) = state.withLock { state -> ([NatsHandlerSubscription], [MicroEndpoint]) in
            defer { state.discovery = []; state.endpoints = []; state.stopped = true }
            return (state.discovery, state.endpoints)
        }
        discovery.forEach { try? $0.unsubscribe() }
        endpoints.forEach { $0.detach() }
    }

    /// The PING response.
    public var ping: MicroPingResponse {
        MicroPingResponse(name: config.name, id: config.id, version: config.version, metadata: config.metadata)
    }

    /// The INFO response.
    public var info: MicroInfoResponse {
        MicroInfoResponse(
            name: config.name, id: config.id, version: config.version, metadata: config.metadata,
            description: config.description, endpoints: state.withLock { $0.endpoints }.map(\.info))
    }

    /// The STATS response.
    public var stats: MicroStatsResponse {
        MicroStatsResponse(
            name: config.name, id: config.id, version: config.version, metadata: config.metadata,
            started: MicroJSON.rfc3339(started), endpoints: state.withLock { $0.endpoints }.map(\.stats))
    }

    private func answer(_ verb: Verb, _ message: NatsMessage) {
        guard message.reply != nil else { return }
        let body: [UInt8]
        switch verb {
        case .ping: body = MicroJSON.encode(ping)
        case .info: body = MicroJSON.encode(info)
        case .stats: body = MicroJSON.encode(stats)
        }
        do { try connection.respond(to: message, payload: body) } catch {
            logger.debug("discovery reply failed", metadata: ["mesh.micro.verb": "\(verb.rawValue)", "error": "\(error)"])
        }
    }
}

/// Identity of a micro service. `name` matches `[A-Za-z0-9_-]+`, `version` is SemVer,
/// `id` is unique per instance.
public struct MicroServiceConfig: Sendable {
    public var name: String
    public var version: String
    public var id: String
    public var description: String
    public var metadata: [String: String]

    public init(name: String, version: String, id: String, description: String = "", metadata: [String: String] = [:]) {
        self.name = name
        self.version = version
        self.id = id
        self.description = description
        self.metadata = metadata
    }

    static func isValidName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"):
                return true
            default: return false
            }
        }
    }

    func validate() throws {
        guard Self.isValidName(name) else { throw MicroError("service name must match [A-Za-z0-9_-]+") }
        guard Self.isValidName(id) else { throw MicroError("service id must match [A-Za-z0-9_-]+") }
        let core = version.split(separator: "-", maxSplits: 1)[0].split(separator: "+", maxSplits: 1)[0]
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else {
            throw MicroError("service version must be SemVer (e.g. 1.2.3)")
        }
    }
}

/// A micro configuration error.
public struct MicroError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// One request to a micro endpoint.
public struct MicroRequest: Sendable {
    /// The request message.
    public let message: NatsMessage
    let connection: NatsConnection
    let endpoint: MicroEndpoint

    /// Replies with `payload`.
    public func respond(payload: [UInt8], headers: NatsHeaders? = nil) {
        try? connection.respond(to: message, payload: payload, headers: headers)
    }

    /// Replies with a micro error (headers `Nats-Service-Error` and `Nats-Service-Error-Code`)
    /// and counts it in the endpoint's statistics.
    public func respondError(code: Int, description: String, payload: [UInt8] = []) {
        var headers = NatsHeaders()
        headers["Nats-Service-Error"] = description
        headers["Nats-Service-Error-Code"] = String(code)
        endpoint.record(processingTime: .zero, error: "\(code):\(description)", countRequest: false)
        try? connection.respond(to: message, payload: payload, headers: headers)
    }
}

/// An endpoint's identity and statistics.
public final class MicroEndpoint: Sendable {
    public let name: String
    public let subject: String
    public let queueGroup: String?
    public let metadata: [String: String]
    private let state = Mutex(Stats())

    private struct Stats {
        var requests: Int = 0
        var errors: Int = 0
        var lastError = ""
        var processingNanos: Int64 = 0
        var subscription: NatsHandlerSubscription?
    }

    init(name: String, subject: String, queueGroup: String?, metadata: [String: String]) {
        self.name = name
        self.subject = subject
        self.queueGroup = queueGroup
        self.metadata = metadata
    }

    /// Counts one handled request and its processing time; a non-nil `error` also counts an error.
    public func record(processingTime: Duration, error: String?, countRequest: Bool = true) {
        let nanos = processingTime.components.seconds * 1_000_000_000 + processingTime.components.attoseconds / 1_000_000_000
        state.withLock {
            if countRequest { $0.requests += 1 }
            $0.processingNanos += nanos
            if let error {
                $0.errors += 1
                $0.lastError = error
            }
        }
    }

    func attach(_ subscription: NatsHandlerSubscription) { state.withLock { $0.subscription = subscription } }

    func detach() { state.withLock { state in defer { state.subscription = nil }; return state.subscription }.map { try? $0.unsubscribe() } }

    var info: MicroEndpointInfo { MicroEndpointInfo(name: name, subject: subject, queueGroup: queueGroup, metadata: metadata) }

    var stats: MicroEndpointStats {
        state.withLock {
            MicroEndpointStats(
                name: name, subject: subject, queueGroup: queueGroup, numRequests: $0.requests, numErrors: $0.errors,
                lastError: $0.lastError, processingTime: $0.processingNanos,
                averageProcessingTime: $0.requests == 0 ? 0 : $0.processingNanos / Int64($0.requests))
        }
    }
}
