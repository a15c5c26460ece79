public import Logging
public import MeshCore

/// The behaviour of an agent kind — the SDK surface of the mesh.
///
/// A kind is a value type (usually a `struct`) that is created from the agent's JSON
/// configuration, handles **actions** one at a time, and — when it has state — turns that
/// state into bytes (`snapshot()`) and back (`restore(from:)`) so that the worker can
/// checkpoint it and a restart (on this node or another) resumes where it left off.
///
/// The runtime (``AgentCell``) guarantees that `handle` is never called concurrently for
/// one agent: actions run serially, in arrival order. Many agents run in parallel.
///
/// ```swift
/// struct Greeter: AgentBehavior {
///     struct Configuration: Decodable, Sendable { var greeting: String? }
///     var greeting: String
///     var greeted = 0                                   // state, checkpointed
///
///     init(configuration: Configuration, setup: AgentSetup) throws {
///         greeting = configuration.greeting ?? "hello"
///     }
///
///     mutating func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
///         guard action == "greet" else { throw MeshError(.invalidArgument, "greeter has no action \(action)") }
///         greeted += 1
///         return Array("\(greeting), \(String(decoding: payload, as: UTF8.self))".utf8)
///     }
///
///     func snapshot() throws -> [UInt8]? { Array(String(greeted).utf8) }
///     mutating func restore(from snapshot: [UInt8]) throws { greeted = Int(String(decoding: snapshot, as: UTF8.self)) ?? 0 }
/// }
///
/// var registry = KindRegistry.builtIn()
/// registry.register("greeter", Greeter.self)
/// ```
///
/// Errors from `handle`:
/// - a ``MeshError`` is an *answer*: the caller gets it as the action's error reply and the
///   agent keeps running (use it for bad input, missing keys, upstream errors);
/// - anything else (for example ``BehaviorFailure``) *fails the agent*: the caller gets an
///   `internal` error, the worker's supervision hook is told, the agent stops accepting
///   actions until it is restarted from its last checkpoint. So does running past the
///   action's deadline.
///
/// Handlers must not block a thread: wait with `await`, and let long CPU loops check
/// `Task.isCancelled` (the runtime cancels a handler that overran its deadline).
///
/// `snapshot()` may be called on a *copy* of the value while the next action runs on the
/// original, so keep state in value types (or synchronise reference types yourself).
public protocol AgentBehavior: Sendable {
    /// The configuration the kind is created from, decoded from the agent spec's JSON
    /// `config` (an empty config reads as `{}`). Unknown fields are ignored, so that a
    /// newer spec still starts an older kind.
    associatedtype Configuration: Decodable & Sendable = NoConfiguration

    /// Creates the behaviour of a newly started (or restarted) agent.
    /// - Throws: ``MeshError`` `invalid_argument` for values out of range; any other
    ///   error is reported as an invalid configuration too.
    init(configuration: Configuration, setup: AgentSetup) throws

    /// Handles one action and returns the reply bytes.
    /// - Parameters:
    ///   - action: the action's name (user text: do not trust it).
    ///   - payload: the caller's bytes (JSON for every built-in kind).
    ///   - context: the agent's id, a logger, the deadline and the dispatcher.
    /// - Throws: ``MeshError`` to answer with an error; anything else fails the agent.
    mutating func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8]

    /// True when every action of the kind is pure in-memory work that finishes at once (no
    /// I/O, no waiting, no unbounded loop), answered by ``handleInline(_:payload:context:)``.
    /// The runtime then runs an idle agent's action on the thread that delivered it instead
    /// of starting a task for it (an action arriving while the agent is busy still waits its
    /// turn in the mailbox, in order). Default: false.
    static var answersInline: Bool { get }

    /// The synchronous form of ``handle(_:payload:context:)`` for kinds that
    /// ``answersInline``: the same answers, the same errors. Default: fails the agent
    /// (never called for other kinds).
    mutating func handleInline(_ action: String, payload: [UInt8], context: AgentContext) throws -> [UInt8]

    /// The state to checkpoint, or nil when the kind keeps no state worth saving.
    /// Default: nil.
    func snapshot() throws -> [UInt8]?

    /// Replaces the state with one produced by `snapshot()` (possibly by an older
    /// version of the kind). Default: ignores the bytes.
    mutating func restore(from snapshot: [UInt8]) throws

    /// Whether `action` may change what `snapshot()` returns. The runtime marks the agent
    /// as needing a checkpoint after every such action (successful or answered with a
    /// ``MeshError``). Default: true — override it to spare checkpoints for read-only
    /// actions, and return false everywhere in stateless kinds.
    func mayChangeState(_ action: String) -> Bool
}

extension AgentBehavior {
    public static var answersInline: Bool { false }
    public mutating func handleInline(_ action: String, payload: [UInt8], context: AgentContext) throws -> [UInt8] {
        throw InlineUnsupported()
    }
    public func snapshot() throws -> [UInt8]? { nil }
    public mutating func restore(from snapshot: [UInt8]) throws {}
    public func mayChangeState(_ action: String) -> Bool { true }
}

/// Thrown by the default ``AgentBehavior/handleInline(_:payload:context:)``: a kind that
/// does not answer inline was asked to (a bug in the kind's `answersInline`).
struct InlineUnsupported: Error {}

/// The configuration of kinds that take none: any JSON object (or an empty config).
public struct NoConfiguration: Decodable, Sendable, Hashable {
    public init() {}
    public init(from decoder: any Decoder) throws {
        _ = try decoder.container(keyedBy: AnyCodingKey.self)
    }
}

/// What a kind learns when it is created.
public struct AgentSetup: Sendable {
    /// The agent being created.
    public let agentID: AgentID
    /// The kind name it was registered under.
    public let kind: String
    /// The agent's labels from its spec.
    public let labels: [String: String]
    /// The worker's logger with `mesh.agent.id` set.
    public let logger: Logger

    public init(agentID: AgentID, kind: String, labels: [String: String] = [:], logger: Logger) {
        self.agentID = agentID
        self.kind = kind
        self.labels = labels
        var logger = logger
        logger[metadataKey: "mesh.agent.id"] = .string(agentID.rawValue)
        self.logger = logger
    }
}

/// What a handler learns about the action it runs: who it is, until when it may run, and
/// how to reach other agents.
///
/// ```swift
/// let remaining = context.timeRemaining
/// let answer = try await context.dispatcher.send("ask", payload: question, to: expert,
///                                                deadline: context.deadline(within: .seconds(2)))
/// context.logger.debug("expert answered")
/// ```
public struct AgentContext: Sendable {
    /// The agent running the action.
    public let agentID: AgentID
    /// The action's name.
    public let action: String
    /// When the action must have answered: the earlier of the caller's deadline and the
    /// agent's action timeout. A handler still running then is cancelled and the agent fails.
    public let deadline: ContinuousClock.Instant
    /// Sends actions to other agents (implemented by the worker).
    public let dispatcher: any ActionDispatcher
    private let baseLogger: Logger

    public init(
        agentID: AgentID, action: String, deadline: ContinuousClock.Instant, dispatcher: any ActionDispatcher, logger: Logger
    ) {
        self.agentID = agentID
        self.action = action
        self.deadline = deadline
        self.dispatcher = dispatcher
        self.baseLogger = logger
    }

    /// The worker's logger with `mesh.agent.id` and `mesh.action` set (built on each use:
    /// keep it in a local when logging often).
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "mesh.agent.id"] = .string(agentID.rawValue)
        logger[metadataKey: "mesh.action"] = .string(String(action.prefix(64)))
        return logger
    }

    /// Time left until ``deadline`` (zero when it has passed).
    public var timeRemaining: Duration { max(.zero, deadline - .now) }

    /// How long before the agent's deadline a kind's own deadline ends, so that a kind
    /// that gives up on a slow dependency still answers (with a `timeout` error) before the
    /// runtime declares the agent itself overdue.
    public static let answerMargin: Duration = .milliseconds(50)

    /// A deadline for work the handler waits on: `limit` from now, but never later than
    /// ``deadline`` minus ``answerMargin``.
    public func deadline(within limit: Duration? = nil) -> ContinuousClock.Instant {
        let latest = deadline - Self.answerMargin
        guard let limit else { return latest }
        return min(latest, .now + limit)
    }
}

/// Throw from `handle` to fail the agent on purpose (the worker then applies the
/// agent's restart policy). Any error that is not a ``MeshError`` does the same; this one
/// carries a reason that is safe to log.
public struct BehaviorFailure: Error, Sendable, CustomStringConvertible {
    /// Why the behaviour failed (no payloads or secrets).
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "behaviour failure: \(reason)" }
}

/// A coding key for any string (used to require a JSON object without naming keys).
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}
