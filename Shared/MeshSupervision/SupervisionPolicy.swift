public import MeshCore

/// When a child of a ``SupervisionGroup`` is restarted after it exits (OTP's restart type).
public enum RestartType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Always restarted, whatever the exit reason (even `normal`).
    case permanent
    /// Restarted only after an abnormal exit (``ExitReason/failure(_:)``); a `normal` or
    /// `shutdown` exit removes it from the group.
    case transient
    /// Never restarted: any exit removes it from the group.
    case temporary

    public var description: String { rawValue }
}

/// Which siblings are restarted together with a failed child (OTP's strategy).
public enum SupervisionStrategy: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Only the child that exited is restarted.
    case oneForOne = "one_for_one"
    /// Every child is restarted; the others are stopped first.
    case oneForAll = "one_for_all"
    /// The child that exited and every child started after it are restarted; the later ones
    /// are stopped first. Earlier siblings are left alone.
    case restForOne = "rest_for_one"

    public var description: String { rawValue }
}

/// Why a child exited.
public enum ExitReason: Sendable, Hashable, CustomStringConvertible {
    /// It finished its work.
    case normal
    /// It was stopped on purpose (by an operator, a spec change or a shard handover).
    case shutdown
    /// It failed: its behaviour threw, timed out or crashed. The message goes to the timeline.
    case failure(String)

    /// `true` for ``failure(_:)``: only then is a transient child restarted (as in OTP,
    /// where `normal` and `shutdown` are the non-abnormal reasons).
    public var isAbnormal: Bool {
        if case .failure = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .normal: "normal"
        case .shutdown: "shutdown"
        case .failure(let message): "failure: \(message)"
        }
    }
}

/// The restart intensity of a group: at most `maxRestarts` restarts within `period`.
///
/// As in OTP the window slides: a restart counts while it is at most `period` old, and a
/// restart that would make the count exceed `maxRestarts` escalates instead (the group is
/// stopped and marked failed). With `maxRestarts == 0` the first failure escalates.
///
/// ```swift
/// let intensity = try RestartIntensity(maxRestarts: 5, period: .seconds(30))
/// ```
public struct RestartIntensity: Sendable, Hashable, CustomStringConvertible {
    /// OTP's and the mesh's default: 3 restarts within 5 s.
    public static let standard = RestartIntensity(unchecked: 3, period: .seconds(5))

    /// The most restarts allowed within ``period``; default 3.
    public let maxRestarts: Int
    /// The length of the sliding window; default 5 s.
    public let period: Duration

    /// - Parameters:
    ///   - maxRestarts: restarts allowed within the window, `>= 0` (default 3).
    ///   - period: the window, `> 0` (default 5 s).
    /// - Throws: ``MeshError`` `invalid_argument` for a negative count or a non-positive period.
    public init(maxRestarts: Int = 3, period: Duration = .seconds(5)) throws(MeshError) {
        guard maxRestarts >= 0 else {
            throw MeshError(.invalidArgument, "maxRestarts must be >= 0, got \(maxRestarts)")
        }
        guard period > .zero else {
            throw MeshError(.invalidArgument, "restart period must be positive, got \(period)")
        }
        self.init(unchecked: maxRestarts, period: period)
    }

    /// - Parameters:
    ///   - maxRestarts: restarts allowed within the window, `>= 0`.
    ///   - periodSeconds: the window in whole seconds, `> 0` (the spec's `periodSeconds`).
    /// - Throws: ``MeshError`` `invalid_argument` for out-of-range values.
    public init(maxRestarts: Int, periodSeconds: Int) throws(MeshError) {
        try self.init(maxRestarts: maxRestarts, period: .seconds(periodSeconds))
    }

    private init(unchecked maxRestarts: Int, period: Duration) {
        self.maxRestarts = maxRestarts
        self.period = period
    }

    public var description: String { "\(maxRestarts) restarts in \(period.mesh_shortDescription)" }
}

/// Exponential backoff with jitter between restarts.
///
/// The delay before the n-th restart in the current intensity window (n starting at 1) is
/// `min(cap, base × multiplier^(n-1))`, then scaled by a random factor in
/// `[1 - jitter, 1]` drawn from the caller's generator, so it never exceeds `cap` and
/// never falls below `(1 - jitter)` of the nominal delay. Because n counts the restarts
/// still inside the window, the delay goes back to `base` once the window has emptied.
///
/// ```swift
/// var rng = SystemRandomNumberGenerator()
/// let backoff = RestartBackoff.standard            // 100 ms, × 2, cap 10 s, jitter 0.2
/// let third = backoff.delay(attempt: 3, using: &rng) // in 320 ms ... 400 ms
/// ```
public struct RestartBackoff: Sendable, Hashable, CustomStringConvertible {
    /// 100 ms base, multiplier 2, cap 10 s, jitter 0.2.
    public static let standard = RestartBackoff(unchecked: .milliseconds(100), multiplier: 2, cap: .seconds(10), jitter: 0.2)
    /// No delay at all (OTP's behaviour: restart at once).
    public static let immediate = RestartBackoff(unchecked: .zero, multiplier: 1, cap: .zero, jitter: 0)

    /// The delay before the first restart in a window; default 100 ms.
    public let base: Duration
    /// The growth factor per further restart in the window, `>= 1`; default 2.
    public let multiplier: Double
    /// The largest delay; default 10 s.
    public let cap: Duration
    /// The fraction of the delay that is random, in `0...1`; default 0.2.
    public let jitter: Double

    /// - Throws: ``MeshError`` `invalid_argument` when `base < 0`, `cap < base`,
    ///   `multiplier < 1` or `jitter` is outside `0...1`.
    public init(
        base: Duration = .milliseconds(100), multiplier: Double = 2, cap: Duration = .seconds(10), jitter: Double = 0.2
    ) throws(MeshError) {
        guard base >= .zero, cap >= base else {
            throw MeshError(.invalidArgument, "backoff needs 0 <= base <= cap, got base \(base), cap \(cap)")
        }
        guard multiplier.isFinite, multiplier >= 1 else {
            throw MeshError(.invalidArgument, "backoff multiplier must be >= 1, got \(multiplier)")
        }
        guard jitter.isFinite, (0...1).contains(jitter) else {
            throw MeshError(.invalidArgument, "backoff jitter must be within 0...1, got \(jitter)")
        }
        self.init(unchecked: base, multiplier: multiplier, cap: cap, jitter: jitter)
    }

    private init(unchecked base: Duration, multiplier: Double, cap: Duration, jitter: Double) {
        self.base = base
        self.multiplier = multiplier
        self.cap = cap
        self.jitter = jitter
    }

    /// The delay without jitter before the `attempt`-th restart in the window (1-based).
    public func nominalDelay(attempt: Int) -> Duration {
        let capNanos = cap.mesh_nanoseconds
        var nanos = base.mesh_nanoseconds
        var step = 1
        while step < attempt, nanos < capNanos {
            nanos *= multiplier
            step += 1
        }
        return .nanoseconds(Int64(min(nanos, capNanos).rounded()))
    }

    /// The jittered delay before the `attempt`-th restart in the window (1-based): within
    /// `[(1 - jitter) × nominal, nominal]`.
    /// - Parameters:
    ///   - attempt: the number of restarts in the current window, this one included.
    ///   - generator: the source of the jitter (inject a seeded one in tests).
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let nominal = nominalDelay(attempt: attempt)
        guard jitter > 0, nominal > .zero else { return nominal }
        let factor = 1 - jitter * Double.random(in: 0..<1, using: &generator)
        return .nanoseconds(Int64((nominal.mesh_nanoseconds * factor).rounded()))
    }

    public var description: String {
        "base \(base.mesh_shortDescription) ×\(multiplier) cap \(cap.mesh_shortDescription) jitter \(jitter)"
    }
}

/// A group's supervision policy: strategy, intensity and backoff.
///
/// ```swift
/// let policy = SupervisionPolicy(strategy: .restForOne, intensity: .standard, backoff: .standard)
/// ```
public struct SupervisionPolicy: Sendable, Hashable {
    /// Which siblings restart together; default ``SupervisionStrategy/oneForOne``.
    public var strategy: SupervisionStrategy
    /// How many restarts the group tolerates; default 3 in 5 s.
    public var intensity: RestartIntensity
    /// The delay between restarts; default 100 ms × 2 up to 10 s, jitter 0.2.
    public var backoff: RestartBackoff

    public init(
        strategy: SupervisionStrategy = .oneForOne, intensity: RestartIntensity = .standard,
        backoff: RestartBackoff = .standard
    ) {
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
    }
}

extension Duration {
    /// The duration in nanoseconds, as a `Double`.
    var mesh_nanoseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    }

    /// A short human form for reasons: `250 ms`, `1.5 s`.
    var mesh_shortDescription: String {
        let nanos = mesh_nanoseconds
        if nanos < 1e6 { return "\(Int64(nanos.rounded()) / 1000) µs" }
        if nanos < 1e9 { return "\(Int64((nanos / 1e6).rounded())) ms" }
        let tenths = (nanos / 1e8).rounded() / 10
        return tenths == tenths.rounded() ? "\(Int64(tenths)) s" : "\(tenths) s"
    }
}
