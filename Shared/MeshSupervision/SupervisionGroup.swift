public import MeshCore

/// A child of a ``SupervisionGroup``: an agent and its restart type.
public struct ChildSpec: Sendable, Hashable {
    /// The agent.
    public var id: AgentID
    /// When it is restarted; default ``RestartType/permanent`` (as in OTP).
    public var restart: RestartType

    public init(_ id: AgentID, restart: RestartType = .permanent) {
        self.id = id
        self.restart = restart
    }
}

/// An input to a ``SupervisionGroup``.
public enum SupervisionEvent: Sendable, Hashable {
    /// A child exited on its own (not because a decision of the group stopped it).
    case exited(AgentID, ExitReason)
    /// A child was added (appended to the start order).
    case added(ChildSpec)
    /// A child was removed on purpose (deleted); its later exit is not restarted.
    case removed(AgentID)
    /// An operator reset the group: a failed group starts again with a fresh window.
    case reset
}

/// What the driver of a ``SupervisionGroup`` must do, with the reason for the timeline.
///
/// Carry it out in this order: stop ``stop`` (in the given order, reverse start order),
/// forget ``remove``, wait ``delay``, start ``start`` (in the given order, start order).
/// For ``Action/groupFailed`` also emit the group-failed event and alert with ``reason``.
/// Exits caused by these stops must not be reported back as ``SupervisionEvent/exited(_:_:)``.
public struct SupervisionDecision: Sendable, Hashable, CustomStringConvertible {
    /// The kind of decision.
    public enum Action: String, Sendable, Hashable {
        /// Nothing to do (the reason says why).
        case none
        /// Start children (after a reset, or a child added).
        case start
        /// Restart children after a delay.
        case restart
        /// Drop children that exited and are not restarted.
        case remove
        /// Intensity exceeded: every child stopped, the group failed until reset.
        case groupFailed = "group_failed"
    }

    /// The kind of decision.
    public var action: Action
    /// Running children to stop first, in this order (reverse start order).
    public var stop: [AgentID]
    /// Children that leave the group and are not restarted (temporary ones, finished
    /// transient ones), in start order.
    public var remove: [AgentID]
    /// Children to (re)start after ``delay``, in start order.
    public var start: [AgentID]
    /// How long to wait before starting ``start`` (the backoff).
    public var delay: Duration
    /// A human-readable reason for the agent timeline, the event and the alert.
    public var reason: String

    public init(
        action: Action, stop: [AgentID] = [], remove: [AgentID] = [], start: [AgentID] = [], delay: Duration = .zero,
        reason: String
    ) {
        self.action = action
        self.stop = stop
        self.remove = remove
        self.start = start
        self.delay = delay
        self.reason = reason
    }

    /// A decision to do nothing, with its reason.
    public static func none(_ reason: String) -> SupervisionDecision { .init(action: .none, reason: reason) }

    public var description: String { "\(action.rawValue): \(reason)" }
}

/// OTP supervision of a group of agents as a pure state machine: restart types, strategy,
/// intensity with a sliding window and exponential backoff with jitter.
///
/// The group does no I/O and reads no clock: every exit comes with the time it was seen
/// and a random number generator for the jitter. It answers with a ``SupervisionDecision``
/// that the driver (the agent worker) carries out. Rules where OTP has none or differs:
/// - A transient child that exits `normal`/`shutdown`, and any temporary child that exits,
///   is removed from the group (OTP keeps a finished transient child's spec; an agent that
///   finished is done). Temporary siblings stopped by a one_for_all / rest_for_one restart
///   are removed too, as in OTP.
/// - When intensity is exceeded the group stops all children (reverse start order),
///   removes its temporary children, clears its window and is failed: further exits are
///   ignored (no restart storm) until ``reset()``, which starts the remaining children
///   again with an empty window.
/// - Exits caused by the group's own stop orders must not be reported back.
/// - Exits of unknown children are ignored with a reason.
///
/// ```swift
/// var group = try SupervisionGroup(
///     policy: SupervisionPolicy(strategy: .restForOne),
///     children: [ChildSpec(db), ChildSpec(cache, restart: .transient), ChildSpec(api)])
/// var rng = SystemRandomNumberGenerator()
/// let decision = group.childExited(cache, reason: .failure("timeout"), at: .now, using: &rng)
/// // decision.action == .restart, decision.stop == [api], decision.start == [cache, api]
/// ```
public struct SupervisionGroup: Sendable, Hashable {
    /// The group's policy.
    public let policy: SupervisionPolicy
    /// The children, in start order.
    public private(set) var children: [ChildSpec]
    /// The times of the restarts inside the current window, oldest first.
    public private(set) var restarts: [ContinuousClock.Instant] = []
    /// Why the group failed, or `nil` while it is healthy.
    public private(set) var failureReason: String?

    /// `true` after intensity was exceeded, until ``reset()``.
    public var isFailed: Bool { failureReason != nil }

    /// - Parameters:
    ///   - policy: strategy, intensity and backoff (defaults: one_for_one, 3 in 5 s,
    ///     100 ms × 2 up to 10 s with jitter 0.2).
    ///   - children: the children in start order.
    /// - Throws: ``MeshError`` `already_exists` when an id appears twice.
    public init(policy: SupervisionPolicy = SupervisionPolicy(), children: [ChildSpec] = []) throws(MeshError) {
        self.policy = policy
        self.children = []
        for child in children { try add(child) }
    }

    /// Appends `child` to the start order. The driver starts it (unless the group is failed:
    /// then it starts on ``reset()``).
    /// - Throws: ``MeshError`` `already_exists` when the id is already a child.
    public mutating func add(_ child: ChildSpec) throws(MeshError) {
        guard index(of: child.id) == nil else {
            throw MeshError(.alreadyExists, "agent \(child.id) is already a child of the group")
        }
        children.append(child)
    }

    /// Removes a child on purpose (it was deleted); its later exit is ignored.
    /// - Returns: whether it was a child.
    @discardableResult
    public mutating func remove(_ id: AgentID) -> Bool {
        guard let index = index(of: id) else { return false }
        children.remove(at: index)
        return true
    }

    /// Applies one event.
    /// - Parameters:
    ///   - event: what happened.
    ///   - now: when it was seen (the driver's monotonic clock).
    ///   - generator: the source of backoff jitter.
    /// - Returns: what to do, with the reason.
    public mutating func handle(
        _ event: SupervisionEvent, at now: ContinuousClock.Instant, using generator: inout some RandomNumberGenerator
    ) -> SupervisionDecision {
        switch event {
        case .exited(let id, let reason):
            return childExited(id, reason: reason, at: now, using: &generator)
        case .added(let child):
            do {
                try add(child)
            } catch {
                return .none("agent \(child.id) is already a child; not added again")
            }
            if let failureReason {
                return .none("agent \(child.id) added to a failed group (\(failureReason)); it starts on reset")
            }
            return SupervisionDecision(
                action: .start, start: [child.id], reason: "agent \(child.id) added to the group (\(child.restart))")
        case .removed(let id):
            return remove(id)
                ? .none("agent \(id) removed from the group; it will not be restarted")
                : .none("agent \(id) is not a child; nothing removed")
        case .reset:
            return reset()
        }
    }

    /// Decides what follows the exit of child `id`.
    /// - Parameters:
    ///   - id: the child that exited on its own.
    ///   - reason: why it exited.
    ///   - now: when the exit was seen.
    ///   - generator: the source of backoff jitter.
    /// - Returns: `.remove` (not restarted), `.restart` (with delay and the siblings to stop
    ///   first), `.groupFailed` (intensity exceeded) or `.none` (failed group, unknown child).
    public mutating func childExited(
        _ id: AgentID, reason: ExitReason, at now: ContinuousClock.Instant,
        using generator: inout some RandomNumberGenerator
    ) -> SupervisionDecision {
        guard let index = index(of: id) else {
            return .none("agent \(id) is not a child of the group; exit (\(reason)) ignored")
        }
        if let failureReason {
            return .none("group failed (\(failureReason)); exit of agent \(id) (\(reason)) ignored until reset")
        }
        let child = children[index]
        switch child.restart {
        case .temporary:
            children.remove(at: index)
            return SupervisionDecision(
                action: .remove, remove: [id], reason: "temporary agent \(id) exited (\(reason)); not restarted")
        case .transient where !reason.isAbnormal:
            children.remove(at: index)
            return SupervisionDecision(
                action: .remove, remove: [id], reason: "transient agent \(id) exited (\(reason)); not restarted")
        case .transient, .permanent:
            break
        }

        // Intensity: OTP's sliding window, a restart counts while it is at most `period` old.
        let intensity = policy.intensity
        restarts.removeAll { now - $0 > intensity.period }
        guard restarts.count < intensity.maxRestarts else {
            return escalate(exited: index, reason: reason, at: now)
        }
        restarts.append(now)
        let attempt = restarts.count
        let delay = policy.backoff.delay(attempt: attempt, using: &generator)

        let affected: Range<Int> =
            switch policy.strategy {
            case .oneForOne: index..<(index + 1)
            case .oneForAll: children.indices
            case .restForOne: index..<children.endIndex
            }
        let siblings = affected.filter { $0 != index }
        let stop = siblings.reversed().map { children[$0].id }
        let removed = siblings.filter { children[$0].restart == .temporary }.map { children[$0].id }
        let start = affected.filter { children[$0].restart != .temporary || $0 == index }.map { children[$0].id }
        children.removeAll { child in removed.contains(child.id) }

        var text = "\(child.restart) agent \(id) exited (\(reason)); \(policy.strategy): restarting \(Self.list(start))"
        if !removed.isEmpty { text += ", dropping temporary \(Self.list(removed))" }
        text += " after \(delay.mesh_shortDescription) (restart \(attempt) of \(intensity))"
        return SupervisionDecision(action: .restart, stop: stop, remove: removed, start: start, delay: delay, reason: text)
    }

    /// Clears the window and, for a failed group, the failure.
    /// - Returns: `.start` of every child for a failed group, `.none` otherwise.
    public mutating func reset() -> SupervisionDecision {
        restarts.removeAll()
        guard let previous = failureReason else {
            return .none("group reset: restart window cleared")
        }
        failureReason = nil
        return SupervisionDecision(
            action: .start, start: children.map(\.id),
            reason: "group reset after failure (\(previous)); starting \(Self.list(children.map(\.id)))")
    }

    private mutating func escalate(exited index: Int, reason: ExitReason, at now: ContinuousClock.Instant) -> SupervisionDecision {
        let id = children[index].id
        let intensity = policy.intensity
        let text =
            "agent \(id) exited (\(reason)) after \(restarts.count) restarts within \(intensity.period.mesh_shortDescription): intensity (\(intensity)) exceeded; group stopped and failed"
        let stop = children.indices.reversed().filter { $0 != index }.map { children[$0].id }
        let removed = children.filter { $0.restart == .temporary }.map(\.id)
        children.removeAll { $0.restart == .temporary }
        restarts.removeAll()
        failureReason = text
        return SupervisionDecision(action: .groupFailed, stop: stop, remove: removed, reason: text)
    }

    private func index(of id: AgentID) -> Int? { children.firstIndex { $0.id == id } }

    private static func list(_ ids: [AgentID]) -> String { ids.map(\.rawValue).joined(separator: ", ") }
}
