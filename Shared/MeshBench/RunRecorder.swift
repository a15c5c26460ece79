public import MeshCore

/// Collects the outcomes of a run's operations: one histogram per second of the run (for
/// the timeline) and one for the whole measured window. Not thread-safe: the load
/// generator keeps it behind a lock. Memory is bounded by the run's length (one histogram
/// per second, validated ≤ 1 h by the CLI), not by the number of operations.
///
/// ```swift
/// var recorder = RunRecorder(warmupSeconds: 2, durationSeconds: 10)
/// recorder.record(at: 3.2, latencyNanos: 850_000, failed: false)
/// let window = recorder.measured   // the histogram after warm-up
/// ```
public struct RunRecorder: Sendable {
    public let warmupSeconds: Double
    public let durationSeconds: Double
    /// Seconds before the window starts, rounded up: index 0 of `seconds` is second −warmupSlots.
    let warmupSlots: Int
    var seconds: [Slot]
    /// Successful operations' latencies inside the measured window.
    public private(set) var measured = LogLinearHistogram()
    /// Operations (successes and errors) completed inside the window.
    public private(set) var operations = 0
    /// Errors inside the window.
    public private(set) var errors = 0
    /// Everything completed, warm-up and late completions included (progress line).
    public private(set) var total = 0
    public private(set) var totalErrors = 0

    struct Slot: Sendable {
        var histogram = LogLinearHistogram()
        var operations = 0
        var errors = 0
    }

    public init(warmupSeconds: Double, durationSeconds: Double) {
        self.warmupSeconds = Swift.max(0, warmupSeconds)
        self.durationSeconds = Swift.max(0, durationSeconds)
        warmupSlots = Int(self.warmupSeconds.rounded(.up))
        seconds = Array(repeating: Slot(), count: warmupSlots + Int(self.durationSeconds.rounded(.up)) + 1)
    }

    /// Records one operation completed at `t` (seconds since the window began; negative
    /// in the warm-up). Completions after the window's end count in the last second of the
    /// timeline but not in the window's figures.
    public mutating func record(at t: Double, latencyNanos: UInt64, failed: Bool) {
        total += 1
        if failed { totalErrors += 1 }
        let slot = Swift.min(seconds.count - 1, Swift.max(0, Int((t + Double(warmupSlots)).rounded(.down))))
        seconds[slot].operations += 1
        if failed { seconds[slot].errors += 1 } else { seconds[slot].histogram.record(latencyNanos) }
        guard t >= 0 && t < durationSeconds else { return }
        operations += 1
        if failed { errors += 1 } else { measured.record(latencyNanos) }
    }

    /// Per-second points from the first warm-up second to the last second of the window.
    /// - Parameter targetRate: the profile's rate at a second (nil in a closed loop).
    public func timeline(targetRate: (Double) -> Double?) -> [TimelinePoint] {
        let last = warmupSlots + Int(durationSeconds.rounded(.up))
        return (0..<Swift.min(last, seconds.count)).map { index in
            let slot = seconds[index]
            let second = index - warmupSlots
            return TimelinePoint(
                second: second, targetRate: targetRate(Double(second)), operations: slot.operations, errors: slot.errors,
                p50Micros: Double(slot.histogram.percentile(0.5)) / 1_000, p99Micros: Double(slot.histogram.percentile(0.99)) / 1_000,
                maxMicros: Double(slot.histogram.max) / 1_000)
        }
    }

    /// The latest full second's figures for a progress line: (operations, p99 so far in ns).
    public func progress(at t: Double) -> (lastSecondOperations: Int, p99Nanos: UInt64) {
        let slot = Int((t + Double(warmupSlots)).rounded(.down)) - 1
        let operations = slot >= 0 && slot < seconds.count ? seconds[slot].operations : 0
        let p99 = measured.count > 0 ? measured.percentile(0.99) : (slot >= 0 && slot < seconds.count ? seconds[slot].histogram.percentile(0.99) : 0)
        return (operations, p99)
    }
}
