import Foundation
public import Logging
public import MeshCore

/// Kind name → factory. The worker asks it for the behaviour of every agent it starts;
/// the registry service can use it to reject specs with an unknown kind or a bad config at
/// the edge.
///
/// ```swift
/// var registry = KindRegistry.builtIn(BuiltInKindOptions(exec: ExecPolicy(allowedCommands: ["/usr/bin/jq"])))
/// registry.register("greeter", Greeter.self)
/// let behavior = try registry.makeBehavior(kind: "counter", config: Array(#"{"initial":5}"#.utf8),
///                                          setup: AgentSetup(agentID: id, kind: "counter", logger: logger))
/// ```
public struct KindRegistry: Sendable {
    /// The largest accepted configuration, in bytes (64 KiB).
    public static let maxConfigBytes = 64 * 1024

    /// Builds a behaviour from raw config bytes.
    typealias Factory = @Sendable (_ config: [UInt8], _ setup: AgentSetup) throws -> any AgentBehavior

    private var factories: [String: Factory] = [:]

    /// An empty registry (see ``builtIn(_:)`` for one with the built-in kinds).
    public init() {}

    /// A registry with every built-in kind: `echo`, `counter`, `kv`, `work`, `fail`,
    /// `fanout`, `exec` (with the worker's allow-list from `options`) and `http`.
    public static func builtIn(_ options: BuiltInKindOptions = BuiltInKindOptions()) -> KindRegistry {
        var registry = KindRegistry()
        registry.register(EchoKind.kindName, EchoKind.self)
        registry.register(CounterKind.kindName, CounterKind.self)
        registry.register(KeyValueKind.kindName, KeyValueKind.self)
        registry.register(WorkKind.kindName, WorkKind.self)
        registry.register(FailKind.kindName, FailKind.self)
        registry.register(FanoutKind.kindName, FanoutKind.self)
        let exec = ExecRunner(policy: options.exec)
        registry.register(ExecKind.kindName, ExecKind.self) { configuration, setup in
            try ExecKind(configuration: configuration, runner: exec, setup: setup)
        }
        registry.register(HTTPKind.kindName, HTTPKind.self)
        return registry
    }

    /// Registers `type` under `name`, created by its own `init(configuration:setup:)`.
    /// A name registered before is replaced.
    /// - Precondition: `name` follows the id rule (`[a-z0-9][a-z0-9_-]{0,62}`).
    public mutating func register<Behavior: AgentBehavior>(_ name: String, _ type: Behavior.Type) {
        register(name, type) { configuration, setup in try Behavior(configuration: configuration, setup: setup) }
    }

    /// Registers `type` under `name`, created by `make` — for kinds that need something
    /// from the worker besides the agent's config (the `exec` allow-list, a shared client).
    /// - Precondition: `name` follows the id rule (`[a-z0-9][a-z0-9_-]{0,62}`).
    public mutating func register<Behavior: AgentBehavior>(
        _ name: String, _ type: Behavior.Type,
        make: @escaping @Sendable (Behavior.Configuration, AgentSetup) throws -> Behavior
    ) {
        precondition(Identifier.isValid(name), "kind name \(name) must match [a-z0-9][a-z0-9_-]{0,62}")
        // Untyped `throws` here: a typed-throws closure in this generic context crashes
        // the 6.3 compiler. `build` throws only MeshError.
        factories[name] = { config, setup in try Self.build(name, config: config, setup: setup, make: make) }
    }

    private static func build<Behavior: AgentBehavior>(
        _ name: String, config: [UInt8], setup: AgentSetup, make: @Sendable (Behavior.Configuration, AgentSetup) throws -> Behavior
    ) throws(MeshError) -> any AgentBehavior {
        let configuration = try JSONCoding.decode(Behavior.Configuration.self, from: config, what: "invalid config for kind '\(name)'")
        let made: Result<Behavior, any Error> = Result { try make(configuration, setup) }
        switch made {
        case .success(let behavior): return behavior
        case .failure(let error): throw (error as? MeshError) ?? MeshError(.invalidArgument, "kind '\(name)' rejected its config")
        }
    }

    /// The registered kind names, sorted.
    public var kinds: [String] { factories.keys.sorted() }

    /// Whether `kind` is registered.
    public func contains(_ kind: String) -> Bool { factories[kind] != nil }

    /// Creates the behaviour of an agent of `kind` from its JSON `config`.
    /// - Throws: ``MeshError`` `invalid_argument` for an unknown kind (the message lists
    ///   the known ones) or an invalid config (the message names the field), `too_large`
    ///   for a config over ``maxConfigBytes``, `permission_denied` when the worker's policy
    ///   forbids it (an `exec` command not on the allow-list).
    public func makeBehavior(kind: String, config: [UInt8], setup: AgentSetup) throws(MeshError) -> any AgentBehavior {
        guard let factory = factories[kind] else {
            throw MeshError(
                .invalidArgument, "unknown agent kind '\(Check.shown(kind))'; known kinds: \(kinds.joined(separator: ", "))")
        }
        guard config.count <= Self.maxConfigBytes else {
            throw MeshError(
                .tooLarge, "config for kind '\(kind)' is \(config.count) bytes; the limit is \(Self.maxConfigBytes) bytes")
        }
        do {
            return try factory(config, setup)
        } catch {
            throw (error as? MeshError) ?? MeshError(.invalidArgument, "kind '\(kind)' rejected its config")
        }
    }

    /// Creates a behaviour and restores `snapshot` into it (when given).
    /// - Throws: as ``makeBehavior(kind:config:setup:)``; `internal` when the snapshot
    ///   cannot be restored.
    public func makeBehavior(kind: String, config: [UInt8], setup: AgentSetup, restoringFrom snapshot: [UInt8]?) throws(MeshError)
        -> any AgentBehavior
    {
        var behavior = try makeBehavior(kind: kind, config: config, setup: setup)
        if let snapshot {
            do {
                try behavior.restore(from: snapshot)
            } catch let error as MeshError {
                throw MeshError(.internalError, "cannot restore the state of agent \(setup.agentID) (kind \(kind)): \(error.message)")
            } catch {
                throw MeshError(.internalError, "cannot restore the state of agent \(setup.agentID) (kind \(kind)): unreadable snapshot")
            }
        }
        return behavior
    }

    /// Checks that an agent of `kind` could be created from `config` (creates and drops
    /// one): for validating specs at the edge.
    /// - Throws: as ``makeBehavior(kind:config:setup:)``.
    public func validate(kind: String, config: [UInt8], logger: Logger = Logger(label: "mesh.agent-sdk")) throws(MeshError) {
        let id = try AgentID("config-check")
        _ = try makeBehavior(kind: kind, config: config, setup: AgentSetup(agentID: id, kind: kind, logger: logger))
    }
}

/// Worker-level settings of the built-in kinds — what an agent's own config must not
/// decide (which commands may run on the node).
public struct BuiltInKindOptions: Sendable {
    /// The `exec` kind's allow-list and limits.
    public var exec: ExecPolicy

    public init(exec: ExecPolicy = ExecPolicy()) {
        self.exec = exec
    }
}
