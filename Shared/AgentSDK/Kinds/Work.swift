import MeshCore

/// `work`: burns CPU or sleeps, for load tests. Stateless.
///
/// ```json
/// config:  {"defaultMicros": 0, "defaultSleepMs": 0, "maxMicros": 1000000, "maxSleepMs": 10000}
/// "cpu"    {"us": 200}            → {"us": 200, "ms": 0}    burns ~200 µs of CPU
/// "sleep"  {"ms": 50}             → {"us": 0, "ms": 50}     waits 50 ms without a thread
/// "run"    {"us": 200, "ms": 50}  → both, in that order; missing fields use the defaults
/// ```
/// Amounts above the configured maxima answer `invalid_argument`. The CPU loop checks
/// cancellation and yields the thread about every millisecond, so an overrunning action
/// is stopped by the runtime's deadline. Hard caps: 10 s of CPU, 10 min of sleep.
public struct WorkKind: AgentBehavior {
    /// The registered name, `work`.
    public static let kindName = AgentKindName.work

    public struct Configuration: Decodable, Sendable {
        public var defaultMicros: Int?
        public var defaultSleepMs: Int?
        /// Largest CPU burn per action. Default 1 s, at most 10 s.
        public var maxMicros: Int?
        /// Longest sleep per action. Default 10 s, at most 10 min.
        public var maxSleepMs: Int?
    }

    struct Amounts: Codable { var us: Int?; var ms: Int? }

    let defaultMicros: Int
    let defaultSleepMs: Int
    let maxMicros: Int
    let maxSleepMs: Int

    public init(configuration: Configuration, setup: AgentSetup) throws {
        maxMicros = try Check.range(configuration.maxMicros, "maxMicros", in: 0...10_000_000, default: 1_000_000, kind: "work")
        maxSleepMs = try Check.range(configuration.maxSleepMs, "maxSleepMs", in: 0...600_000, default: 10_000, kind: "work")
        defaultMicros = try Check.range(configuration.defaultMicros, "defaultMicros", in: 0...maxMicros, default: 0, kind: "work")
        defaultSleepMs = try Check.range(configuration.defaultSleepMs, "defaultSleepMs", in: 0...maxSleepMs, default: 0, kind: "work")
    }

    public func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        let amounts = try JSONCoding.decode(Amounts.self, from: payload, what: "work action '\(Check.shown(action))'")
        let micros: Int
        let millis: Int
        switch action {
        case "cpu": (micros, millis) = (amounts.us ?? defaultMicros, 0)
        case "sleep": (micros, millis) = (0, amounts.ms ?? defaultSleepMs)
        case "run": (micros, millis) = (amounts.us ?? defaultMicros, amounts.ms ?? defaultSleepMs)
        default: throw MeshError(.invalidArgument, "kind work has no action '\(Check.shown(action))'; actions: cpu, sleep, run")
        }
        guard (0...maxMicros).contains(micros) else { throw MeshError(.invalidArgument, "work: 'us' must be within 0...\(maxMicros)") }
        guard (0...maxSleepMs).contains(millis) else { throw MeshError(.invalidArgument, "work: 'ms' must be within 0...\(maxSleepMs)") }
        if micros > 0 { try await Self.burn(.microseconds(micros)) }
        if millis > 0 { try await Task.sleep(for: .milliseconds(millis)) }
        return JSONCoding.encode(Amounts(us: micros, ms: millis))
    }

    public func mayChangeState(_ action: String) -> Bool { false }

    /// Spins for `duration`, yielding about every millisecond and stopping on cancellation.
    static func burn(_ duration: Duration) async throws {
        let clock = ContinuousClock()
        let end = clock.now + duration
        var nextYield = clock.now + .milliseconds(1)
        var sink: UInt64 = 0x9E37_79B9_7F4A_7C15
        while true {
            for _ in 0..<256 { sink = sink &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
            let now = clock.now
            if now >= end { break }
            if now >= nextYield {
                try Task.checkCancellation()
                await Task.yield()
                nextYield = now + .milliseconds(1)
            }
        }
        if sink == 42 { print("") }  // keeps the loop from being optimised away
    }
}
