public import MeshCore
import Foundation

/// How a benchmark drives load: the target rate at each instant of the measured window
/// (open loop), or a fixed number of operations in flight (closed loop).
///
/// Open-loop profiles send at the rate they name whatever the system does, and latency is
/// measured from each operation's *intended* send time, so a stall shows up as latency
/// instead of silently lowering the load (no coordinated omission). The closed loop (`max`)
/// finds the highest sustainable throughput.
///
/// Textual form (the `--profile` option and the `profile` field of a result):
///
/// | form | meaning |
/// |---|---|
/// | `max` / `max:N` | closed loop, N operations in flight (default 256) |
/// | `constant:R` | R operations/s for the whole run |
/// | `ramp:A,B` | from A/s linearly to B/s over the measured duration |
/// | `step:A,S,Ds` | A/s, plus S/s every D seconds |
/// | `spike:B,P,Ts,Ls` | B/s, P/s from T s for L s, then B/s again (baseline → burst → recovery) |
///
/// ```swift
/// let profile = try LoadProfile(parsing: "spike:1000,8000,10s,5s")
/// profile.targetRate(at: 12, duration: 30)   // 8000
/// ```
public enum LoadProfile: Sendable, Hashable {
    /// Closed loop: `inFlight` operations outstanding at all times.
    case max(inFlight: Int)
    /// Open loop at `rate` operations per second.
    case constant(rate: Double)
    /// Open loop, rate linear from `from` to `to` over the measured duration.
    case ramp(from: Double, to: Double)
    /// Open loop: `from`, increased by `by` every `every` seconds.
    case step(from: Double, by: Double, every: Double)
    /// Open loop: `baseline`, `burst` during `[at, at + length)`, then `baseline` again.
    case spike(baseline: Double, burst: Double, at: Double, length: Double)

    /// The default closed-loop concurrency.
    public static let defaultInFlight = 256
    /// Highest accepted rate (operations per second).
    public static let maxRate: Double = 10_000_000
    /// Highest accepted concurrency.
    public static let maxInFlight = 100_000

    /// Whether operations are sent on a schedule (every profile but `max`).
    public var isOpenLoop: Bool {
        if case .max = self { return false }
        return true
    }

    /// The target rate (operations/s) at `t` seconds into the measured window of a run of
    /// `duration` seconds; `t < 0` is the warm-up, which runs at the rate of `t = 0`.
    /// - Returns: nil for the closed loop.
    public func targetRate(at t: Double, duration: Double) -> Double? {
        let t = Swift.max(0, t)
        switch self {
        case .max:
            return nil
        case .constant(let rate):
            return rate
        case .ramp(let from, let to):
            guard duration > 0 else { return from }
            return from + (to - from) * Swift.min(1, t / duration)
        case .step(let from, let by, let every):
            return Swift.max(0, from + by * (t / every).rounded(.down))
        case .spike(let baseline, let burst, let at, let length):
            return t >= at && t < at + length ? burst : baseline
        }
    }

    /// The number of operations the schedule intends in `[0, t)`: the integral of the
    /// target rate (negative for warm-up times, where the rate is that of `t = 0`).
    /// - Returns: nil for the closed loop.
    public func cumulativeOperations(at t: Double, duration: Double) -> Double? {
        switch self {
        case .max:
            return nil
        case .constant(let rate):
            return rate * t
        case .ramp(let from, let to):
            guard t > 0 else { return from * t }
            guard duration > 0 else { return to * t }
            let within = Swift.min(t, duration)
            let ramped = from * within + (to - from) * within * within / (2 * duration)
            return ramped + to * Swift.max(0, t - duration)
        case .step(let from, let by, let every):
            guard t > 0 else { return from * t }
            let k = (t / every).rounded(.down)
            // Steps 0..<k are whole; rates clamp at 0 once a negative step reaches it.
            var whole = k
            if by < 0 { whole = Swift.min(k, (from / -by).rounded(.up)) }
            let completed = every * (from * whole + by * whole * (whole - 1) / 2)
            let current = Swift.max(0, from + by * k) * (t - k * every)
            return completed + current
        case .spike(let baseline, let burst, let at, let length):
            guard t > 0 else { return baseline * t }
            return baseline * t + (burst - baseline) * Swift.min(length, Swift.max(0, t - at))
        }
    }

    /// The time at which the schedule's cumulative count reaches `count` (the inverse of
    /// ``cumulativeOperations(at:duration:)``): operation `k` of a run whose warm-up starts
    /// at `-w` is intended at `sendTime(ofCount: cumulativeOperations(at: -w) + k)`.
    /// Computing each send time from its index keeps the schedule free of drift.
    /// - Returns: nil for the closed loop; `.infinity` when the rate stays 0 for ever.
    public func sendTime(ofCount count: Double, duration: Double) -> Double? {
        guard let rateAtZero = targetRate(at: 0, duration: duration) else { return nil }
        if case .constant(let rate) = self { return count / rate }
        if count <= 0 { return rateAtZero > 0 ? count / rateAtZero : (count == 0 ? 0 : -.infinity) }
        func n(_ t: Double) -> Double { cumulativeOperations(at: t, duration: duration) ?? 0 }
        var low = 0.0
        var step = 1.0 / Swift.max(targetRate(at: 0, duration: duration) ?? 1, 1e-3)
        var high = low + step
        while n(high) < count {
            low = high
            step *= 2
            high = low + step
            if high > 1e9 { return .infinity }
        }
        for _ in 0..<64 {
            let middle = (low + high) / 2
            if middle == low || middle == high { break }
            if n(middle) < count { low = middle } else { high = middle }
        }
        return high
    }

    /// The intended send time of the operation after one intended at `t` (seconds of the
    /// measured window; negative during warm-up): where one more operation is due.
    /// - Returns: nil for the closed loop.
    public func nextSendTime(after t: Double, duration: Double) -> Double? {
        guard let done = cumulativeOperations(at: t, duration: duration) else { return nil }
        return sendTime(ofCount: done + 1, duration: duration)
    }

    /// How many operations the schedule intends to start in `[0, duration)`.
    /// - Returns: nil for the closed loop.
    public func plannedOperations(duration: Double) -> Int? {
        guard let total = cumulativeOperations(at: duration, duration: duration) else { return nil }
        return Int((total - 1e-9).rounded(.up))
    }

    /// The highest target rate over the run (for sizing); nil for the closed loop.
    public func peakRate(duration: Double) -> Double? {
        switch self {
        case .max: return nil
        case .constant(let rate): return rate
        case .ramp(let from, let to): return Swift.max(from, to)
        case .step(let from, let by, let every):
            return Swift.max(from, from + by * (Swift.max(0, duration) / every).rounded(.down))
        case .spike(let baseline, let burst, _, _): return Swift.max(baseline, burst)
        }
    }

    /// Parses the textual form (see the type's documentation).
    /// - Throws: ``MeshError`` `invalid_argument` naming what is wrong.
    public init(parsing text: String) throws(MeshError) {
        let trimmed = text.trimmingCharacters(in: [" "])
        let parts = trimmed.split(separator: ":", maxSplits: 1).map(String.init)
        guard let kind = parts.first else { throw MeshError(.invalidArgument, "empty load profile") }
        let arguments = parts.count > 1 ? parts[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init) : []
        func rate(_ index: Int, allowZero: Bool = false) throws(MeshError) -> Double {
            guard index < arguments.count, let value = Double(arguments[index]), value.isFinite,
                allowZero ? value >= 0 : value > 0, value <= Self.maxRate
            else {
                throw MeshError(.invalidArgument, "load profile '\(text)': argument \(index + 1) must be a rate in \(allowZero ? "0" : "(0")...\(Int(Self.maxRate))/s")
            }
            return value
        }
        func seconds(_ index: Int, allowZero: Bool) throws(MeshError) -> Double {
            guard index < arguments.count else { throw MeshError(.invalidArgument, "load profile '\(text)': argument \(index + 1) (seconds) is missing") }
            var raw = Substring(arguments[index])
            if raw.hasSuffix("s") { raw = raw.dropLast() }
            guard let value = Double(raw), value.isFinite, allowZero ? value >= 0 : value > 0, value <= 86_400 else {
                throw MeshError(.invalidArgument, "load profile '\(text)': argument \(index + 1) must be seconds in \(allowZero ? "0" : "(0")...86400")
            }
            return value
        }
        func expect(_ count: Int, _ usage: String) throws(MeshError) {
            guard arguments.count == count else { throw MeshError(.invalidArgument, "load profile '\(text)': expected \(usage)") }
        }
        switch kind {
        case "max":
            if arguments.isEmpty {
                self = .max(inFlight: Self.defaultInFlight)
            } else {
                try expect(1, "max:IN_FLIGHT")
                guard let n = Int(arguments[0]), (1...Self.maxInFlight).contains(n) else {
                    throw MeshError(.invalidArgument, "load profile '\(text)': in-flight must be in 1...\(Self.maxInFlight)")
                }
                self = .max(inFlight: n)
            }
        case "constant":
            try expect(1, "constant:RATE")
            self = .constant(rate: try rate(0))
        case "ramp":
            try expect(2, "ramp:FROM,TO")
            let from = try rate(0, allowZero: true)
            let to = try rate(1, allowZero: true)
            guard from > 0 || to > 0 else { throw MeshError(.invalidArgument, "load profile '\(text)': a ramp needs a non-zero end") }
            self = .ramp(from: from, to: to)
        case "step":
            try expect(3, "step:FROM,STEP,SECONDS")
            let from = try rate(0)
            guard let by = Double(arguments[1]), by.isFinite, abs(by) <= Self.maxRate else {
                throw MeshError(.invalidArgument, "load profile '\(text)': the step must be a rate (may be negative)")
            }
            self = .step(from: from, by: by, every: try seconds(2, allowZero: false))
        case "spike":
            try expect(4, "spike:BASELINE,BURST,STARTs,LENGTHs")
            self = .spike(baseline: try rate(0), burst: try rate(1), at: try seconds(2, allowZero: true), length: try seconds(3, allowZero: false))
        default:
            throw MeshError(.invalidArgument, "unknown load profile '\(kind)' (max, constant, ramp, step, spike)")
        }
    }
}

extension LoadProfile: CustomStringConvertible, Codable {
    /// The textual form; `LoadProfile(parsing: p.description) == p`.
    public var description: String {
        func number(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        }
        switch self {
        case .max(let n): return "max:\(n)"
        case .constant(let rate): return "constant:\(number(rate))"
        case .ramp(let from, let to): return "ramp:\(number(from)),\(number(to))"
        case .step(let from, let by, let every): return "step:\(number(from)),\(number(by)),\(number(every))s"
        case .spike(let baseline, let burst, let at, let length): return "spike:\(number(baseline)),\(number(burst)),\(number(at))s,\(number(length))s"
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            self = try LoadProfile(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
