import MeshCore

/// The life of one alert (one rule, one group) as a pure state machine:
/// `inactive → pending → firing → inactive` (the last step is "resolved"). A condition that
/// holds starts `pending`; once it has held for the rule's for-duration the alert fires
/// (at once when the duration is 0); when it stops holding a firing alert resolves and a
/// pending one goes back to inactive without ever firing.
///
/// ```swift
/// var alert = AlertStateMachine()
/// alert.step(holds: true, value: 93, now: 0, forMs: 60_000)        // .pending
/// alert.step(holds: true, value: 95, now: 60_000, forMs: 60_000)   // .fired
/// alert.step(holds: false, value: 10, now: 61_000, forMs: 60_000)  // .resolved
/// ```
public struct AlertStateMachine: Sendable, Hashable {
    public enum Phase: String, Sendable, Hashable {
        case inactive, pending, firing
    }

    /// What one step changed.
    public enum Transition: String, Sendable, Hashable {
        /// The condition started to hold; the for-duration runs.
        case pending
        /// The condition stopped holding before the alert fired.
        case cleared
        /// The alert fires.
        case fired
        /// A firing alert's condition stopped holding.
        case resolved
    }

    public private(set) var phase: Phase = .inactive
    /// When the condition started to hold (pending and firing).
    public private(set) var activeSinceUnixMs: Int64?
    /// When the alert fired (firing).
    public private(set) var firedAtUnixMs: Int64?
    /// The latest value evaluated (nil when the expression had no value).
    public private(set) var lastValue: Double?

    public init() {}

    /// Advances the machine by one evaluation.
    /// - Parameters:
    ///   - holds: whether the rule's condition holds now (false when there is no value).
    ///   - value: the evaluated value, if any.
    ///   - now: evaluation time, in ms.
    ///   - forMs: the rule's for-duration.
    /// - Returns: the transition taken, nil when the phase did not change.
    @discardableResult
    public mutating func step(holds: Bool, value: Double?, now: Int64, forMs: Int64) -> Transition? {
        lastValue = value
        switch (phase, holds) {
        case (.inactive, true):
            activeSinceUnixMs = now
            if forMs <= 0 {
                phase = .firing
                firedAtUnixMs = now
                return .fired
            }
            phase = .pending
            return .pending
        case (.pending, true):
            guard let since = activeSinceUnixMs, now - since >= forMs else { return nil }
            phase = .firing
            firedAtUnixMs = now
            return .fired
        case (.pending, false):
            phase = .inactive
            activeSinceUnixMs = nil
            return .cleared
        case (.firing, false):
            phase = .inactive
            activeSinceUnixMs = nil
            firedAtUnixMs = nil
            return .resolved
        case (.firing, true), (.inactive, false):
            return nil
        }
    }
}

/// One alert as listed: a rule, the group it is about, where it stands.
public struct AlertStatus: Sendable, Hashable {
    /// The rule's name.
    public var rule: String
    public var severity: AlertSeverity
    /// The rule's one-line summary.
    public var summary: String
    /// `pending`, `firing` or `resolved`.
    public var state: String
    /// `service`, `instance` and the series' labels the alert is about (empty: the cluster).
    public var labels: [String: String]
    /// The latest value (after the rule's scale).
    public var value: Double
    public var threshold: Double
    public var comparison: AlertComparison
    /// When the condition started to hold (0: unknown).
    public var activeSinceUnixMs: Int64
    /// When it fired (0: not yet).
    public var firedAtUnixMs: Int64
    /// When it resolved (0: not resolved).
    public var resolvedAtUnixMs: Int64
}

/// A transition worth telling others about (published as an event).
public struct AlertNotice: Sendable, Hashable {
    /// `fired` or `resolved`.
    public var transition: AlertStateMachine.Transition
    public var status: AlertStatus
}

/// Evaluates a rule's expression over the frames: one value per group.
public enum AlertExpressionEvaluator {
    /// The value of `expression` per group at the newest frame, with rates and quantiles
    /// over `windowMs` (no value for a group where it cannot be computed).
    public static func evaluate(_ expression: AlertExpression, frames: [Frame], windowMs: Int64, by grouping: Grouping) -> [GroupKey: Double] {
        guard let now = frames.last else { return [:] }
        switch expression {
        case .gauge(let selector):
            return FrameMath.gauges(selector, frame: now, by: grouping)
        case .rate(let selector):
            guard let window = FrameMath.window(frames, windowMs: windowMs) else { return [:] }
            return FrameMath.rates(selector, now: now, then: window.then, later: window.later, by: grouping)
        case .quantile(let selector, let q):
            let window = FrameMath.window(frames, windowMs: windowMs)
            guard window != nil || frames.count == 1 else { return [:] }
            return FrameMath.histograms(selector, now: now, then: window?.then, later: window?.later ?? [], by: grouping)
                .filter { $0.value.histogram.count > 0 }
                .mapValues { Double($0.histogram.percentile(q)) }
        case .ratio(let numerator, let denominator):
            let top = evaluate(numerator, frames: frames, windowMs: windowMs, by: grouping)
            let bottom = evaluate(denominator, frames: frames, windowMs: windowMs, by: grouping)
            var result: [GroupKey: Double] = [:]
            for (key, divisor) in bottom where divisor > 0 {
                result[key] = (top[key] ?? 0) / divisor
            }
            return result
        }
    }
}

/// Every rule's alerts: evaluation over the frames, the state machines, and a bounded list
/// of recently resolved alerts. Pure (the caller supplies frames and the time).
public struct AlertBook: Sendable {
    public let rules: [AlertRule]
    /// Most resolved alerts remembered.
    public let resolvedLimit: Int
    private var machines: [String: [GroupKey: AlertStateMachine]] = [:]
    private var resolved: [AlertStatus] = []

    public init(rules: [AlertRule], resolvedLimit: Int = 100) {
        self.rules = rules
        self.resolvedLimit = resolvedLimit
    }

    /// Evaluates every rule at the newest frame.
    /// - Returns: the alerts that fired or resolved in this evaluation.
    public mutating func evaluate(frames: [Frame]) -> [AlertNotice] {
        guard let now = frames.last?.atUnixMs else { return [] }
        var notices: [AlertNotice] = []
        for rule in rules {
            let values = AlertExpressionEvaluator.evaluate(rule.expression, frames: frames, windowMs: rule.windowMs, by: rule.grouping)
                .mapValues { $0 * rule.scale }
            var ruleMachines = machines[rule.name] ?? [:]
            for key in Set(ruleMachines.keys).union(values.keys) {
                let value = values[key]
                let holds = value.map { rule.comparison.holds($0, rule.threshold) } ?? false
                var machine = ruleMachines[key] ?? AlertStateMachine()
                let before = machine
                let transition = machine.step(holds: holds, value: value, now: now, forMs: rule.forMs)
                switch transition {
                case .fired:
                    notices.append(AlertNotice(transition: .fired, status: Self.status(rule, key, machine, state: "firing", resolvedAt: 0)))
                case .resolved:
                    var status = Self.status(rule, key, before, state: "resolved", resolvedAt: now)
                    status.value = value ?? status.value
                    notices.append(AlertNotice(transition: .resolved, status: status))
                    resolved.append(status)
                    if resolved.count > resolvedLimit { resolved.removeFirst(resolved.count - resolvedLimit) }
                default: break
                }
                ruleMachines[key] = machine.phase == .inactive ? nil : machine
            }
            machines[rule.name] = ruleMachines
        }
        return notices
    }

    /// Pending and firing alerts, firing first, then by rule and group; with
    /// `includeResolved`, the recently resolved ones after them (newest first).
    public func list(includeResolved: Bool) -> [AlertStatus] {
        var active: [AlertStatus] = []
        for rule in rules {
            for (key, machine) in machines[rule.name] ?? [:] {
                active.append(Self.status(rule, key, machine, state: machine.phase.rawValue, resolvedAt: 0))
            }
        }
        active.sort { ($0.state == "firing" ? 0 : 1, $0.rule, $0.labels.description) < ($1.state == "firing" ? 0 : 1, $1.rule, $1.labels.description) }
        return includeResolved ? active + resolved.reversed() : active
    }

    /// Number of firing alerts.
    public var firingCount: Int {
        machines.values.reduce(0) { $0 + $1.values.filter { $0.phase == .firing }.count }
    }

    private static func status(_ rule: AlertRule, _ key: GroupKey, _ machine: AlertStateMachine, state: String, resolvedAt: Int64) -> AlertStatus {
        AlertStatus(
            rule: rule.name, severity: rule.severity, summary: rule.summary, state: state, labels: key.labelDictionary,
            value: machine.lastValue ?? 0, threshold: rule.threshold, comparison: rule.comparison,
            activeSinceUnixMs: machine.activeSinceUnixMs ?? 0, firedAtUnixMs: machine.firedAtUnixMs ?? 0, resolvedAtUnixMs: resolvedAt)
    }
}
