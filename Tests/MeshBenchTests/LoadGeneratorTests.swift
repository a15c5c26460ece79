import Foundation
import MeshBench
import MeshCore
import Synchronization
import Testing

/// The load generator's semantics. Only schedule counts and lower bounds of latency are
/// checked: a slow machine makes latencies larger, never smaller, so none of this depends
/// on how fast the machine is.
@Suite(.serialized) struct LoadGeneratorTests {
    final class Seen: Sendable {
        let indexes = Mutex<[Int]>([])
        let active = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
    }

    func generator(_ profile: LoadProfile, warmup: Double, duration: Double) -> LoadGenerator {
        var generator = LoadGenerator(label: "test", profile: profile, warmup: warmup, duration: duration)
        generator.showsProgress = false
        return generator
    }

    @Test func theOpenLoopSendsExactlyTheScheduleWarmUpIncluded() async {
        let seen = Seen()
        let measurement = await generator(.constant(rate: 200), warmup: 0.5, duration: 1).run { index in
            seen.indexes.withLock { $0.append(index) }
        }
        // 0.5 s of warm-up and 1 s of window at 200/s: operations 0..<300, each once.
        #expect(seen.indexes.withLock { $0.sorted() } == Array(0..<300))
        #expect(measurement.recorder.total == 300)
        #expect(measurement.timeline.first?.second == -1 && measurement.timeline.last?.second == 0)
        #expect(measurement.timeline.filter { $0.second >= 0 }.allSatisfy { $0.targetRate == 200 })
    }

    @Test func cancellingAnOpenLoopStopsTheScheduleAndAwaitsWhatIsInFlight() async {
        let seen = Seen()
        let run = Task {
            await generator(.constant(rate: 1_000), warmup: 0, duration: 30).run { index in
                seen.active.wrappingAdd(1, ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(20))
                seen.indexes.withLock { $0.append(index) }
                seen.active.wrappingSubtract(1, ordering: .relaxed)
            }
        }
        try? await Task.sleep(for: .milliseconds(300))
        run.cancel()
        let measurement = await run.value
        let sent = seen.indexes.withLock { $0.count }
        // Stopped after about 0.3 s of a 30 s schedule; nothing was left running.
        #expect(sent > 50 && sent < 5_000, "\(sent)")
        #expect(seen.active.load(ordering: .relaxed) == 0)
        #expect(measurement.recorder.total == UInt64(sent))
    }

    @Test func openLoopLatencyCountsFromTheIntendedSendTime() async throws {
        // Every operation waits for a gate that opens 0.5 s into the window: one intended at
        // t = 0 has at least 0.5 s of latency though it was "served" at once when it ran —
        // the stall is measured, not omitted.
        let clock = ContinuousClock()
        let opens = clock.now + .milliseconds(500)
        let measurement = await generator(.constant(rate: 100), warmup: 0, duration: 1).run { _ in
            if clock.now < opens { try await clock.sleep(until: opens) }
        }
        let histogram = measurement.recorder.measured
        #expect(histogram.count == 100)
        #expect(histogram.max >= 450_000_000, "max \(histogram.max) ns")
        // The 50 operations intended before the gate opened waited 0.5 s − t each: at least
        // 40 of them waited 100 ms or more.
        let delayed = histogram.count - UInt64(histogram.percentileRank(below: 100_000_000))
        #expect(delayed >= 40, "\(delayed)")
    }

    @Test func theClosedLoopKeepsNInFlightAndCountsErrors() async {
        let seen = Seen()
        let measurement = await generator(.max(inFlight: 4), warmup: 0, duration: 0.3).run { index in
            let now = seen.active.wrappingAdd(1, ordering: .relaxed).newValue
            _ = seen.peak.max(now, ordering: .relaxed)
            defer { seen.active.wrappingSubtract(1, ordering: .relaxed) }
            seen.indexes.withLock { $0.append(index) }
            try await Task.sleep(for: .milliseconds(1))
            if index % 2 == 1 { throw MeshError(.busy, "odd \(index % 4)") }
        }
        let indexes = seen.indexes.withLock { $0.sorted() }
        #expect(!indexes.isEmpty && indexes == Array(0..<indexes.count))  // each index once
        #expect(seen.peak.load(ordering: .relaxed) <= 4)
        #expect(measurement.recorder.total == indexes.count)
        #expect(measurement.recorder.totalErrors == indexes.filter { $0 % 2 == 1 }.count)
        #expect(Set(measurement.errorSamples) == ["busy: odd 1", "busy: odd 3"])
        let result = measurement.result(name: "x", scenario: "actions", run: 1, parameters: [:], profile: .max(inFlight: 4))
        #expect(result.errors == measurement.recorder.errors && result.profile == "max:4")
        #expect(result.notes.contains { $0.hasPrefix("errors: ") })
    }

    /// The callback form: completions on other threads chain the closed loop, failures that
    /// complete at once (on the caller's stack) neither recurse nor stop it, and the open
    /// loop sends the schedule.
    @Test func callbackOperationsKeepNInFlightAndTheSchedule() async {
        let seen = Seen()
        let queue = DispatchQueue(label: "test.completions", attributes: .concurrent)
        let measurement = await generator(.max(inFlight: 4), warmup: 0, duration: 0.3).run { index, done in
            let now = seen.active.wrappingAdd(1, ordering: .relaxed).newValue
            _ = seen.peak.max(now, ordering: .relaxed)
            seen.indexes.withLock { $0.append(index) }
            if index % 3 == 2 {
                seen.active.wrappingSubtract(1, ordering: .relaxed)
                done(MeshError(.busy, "at once"))  // on this stack
                return
            }
            queue.asyncAfter(deadline: .now() + .milliseconds(1)) {
                seen.active.wrappingSubtract(1, ordering: .relaxed)
                done(nil)
            }
        }
        let indexes = seen.indexes.withLock { $0.sorted() }
        #expect(indexes.count > 20 && indexes == Array(0..<indexes.count))  // each index once, and it went on past failures
        #expect(seen.peak.load(ordering: .relaxed) <= 4)
        #expect(measurement.recorder.total == indexes.count)
        #expect(measurement.recorder.totalErrors == indexes.filter { $0 % 3 == 2 }.count)
        #expect(seen.active.load(ordering: .relaxed) == 0)

        let scheduled = Seen()
        let open = await generator(.constant(rate: 200), warmup: 0.5, duration: 1).run { index, done in
            scheduled.indexes.withLock { $0.append(index) }
            queue.async { done(nil) }
        }
        #expect(scheduled.indexes.withLock { $0.sorted() } == Array(0..<300))
        #expect(open.recorder.total == 300)
    }

    @Test func theSamplerReadsProcFiguresAndSkipsUnknownProcesses() async throws {
        #if os(Linux)
        let own = try #require(ResourceSampler.read(pid: getpid()))
        #expect(own.rssBytes > 0)
        let sampler = ResourceSampler(processes: [MeshProcess(name: "self", pid: getpid()), MeshProcess(name: "gone", pid: Int32.max)])
        sampler.begin()
        var spin = 0.0
        let end = ContinuousClock.now + .milliseconds(200)
        while ContinuousClock.now < end { spin += 1 }
        #expect(spin > 0)
        let usage = sampler.finish(windowSeconds: 0.2)
        #expect(usage.sampled && usage.processes.map(\.name) == ["self"])
        #expect(usage.cpuPercent > 0 && usage.rssBytes > 0)
        #endif
        #expect(ResourceSampler(processes: []).finish(windowSeconds: 1) == .none)
    }
}

extension LogLinearHistogram {
    /// How many observations are certainly below `value` (whole buckets under it).
    func percentileRank(below value: UInt64) -> Int {
        var total: UInt64 = 0
        for (index, count) in counts.enumerated() where LogLinearHistogram.upperBound(ofBucket: index, precisionBits: precisionBits) < value {
            total += count
        }
        return Int(total)
    }
}
