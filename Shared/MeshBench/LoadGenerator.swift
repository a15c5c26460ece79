public import Foundation
import MeshCore
import Synchronization

/// The load generator behind every `meshctl bench` scenario (no I/O of its own but the
/// progress line and `/proc` reads): drives an operation under a
/// ``LoadProfile`` for a warm-up and a measured window, records every completion in a
/// ``RunRecorder`` and prints a live progress line on stderr.
///
/// - Open loop (constant, ramp, step, spike): operation `i` is *intended* at the instant the
///   profile's schedule says; it starts then (or at once when the generator is late) and
///   its latency is measured from the intended instant, so a stalled system shows its
///   stall as latency instead of lowering the load (no coordinated omission). At most
///   `maxOutstanding` operations run at once; past that the generator waits, and the
///   waiting shows up as latency too.
/// - Closed loop (`max:N`): N workers each run the next operation when their last one
///   finished; latency is from each operation's start.
///
/// ```swift
/// let measurement = await LoadGenerator(label: "actions", profile: .constant(rate: 5_000), warmup: 2, duration: 10)
///     .run { index in _ = try await actions.act(ids[index % ids.count], action: "echo") }
/// ```
public struct LoadGenerator: Sendable {
    public var label: String
    public var profile: LoadProfile
    public var warmup: Double
    public var duration: Double
    /// Bound on operations in flight in the open loop.
    public var maxOutstanding = 20_000
    /// Processes whose CPU and memory are sampled during the window.
    public var processes: [MeshProcess] = []
    /// Whether to print the progress line on stderr.
    public var showsProgress = true

    public init(label: String, profile: LoadProfile, warmup: Double, duration: Double, processes: [MeshProcess] = []) {
        self.label = label
        self.profile = profile
        self.warmup = warmup
        self.duration = duration
        self.processes = processes
    }

    /// What a run measured.
    public struct Measurement: Sendable {
        public var startedAt: Date
        public var recorder: RunRecorder
        public var timeline: [TimelinePoint]
        public var resources: ResourceUsage
        /// Up to 5 distinct error descriptions.
        public var errorSamples: [String]
    }

    /// Shared state of a run, touched by the operations' tasks and the progress loop.
    final class RunState: Sendable {
        let clock = ContinuousClock()
        let origin: ContinuousClock.Instant
        let recorder: Mutex<RunRecorder>
        let errors = Mutex<[String]>([])
        let finished = Atomic<Bool>(false)
        let outstanding = Atomic<Int>(0)
        let next = Atomic<Int>(0)

        init(origin: ContinuousClock.Instant, warmup: Double, duration: Double) {
            self.origin = origin
            recorder = Mutex(RunRecorder(warmupSeconds: warmup, durationSeconds: duration))
        }

        func seconds(_ instant: ContinuousClock.Instant) -> Double { (instant - origin).totalSeconds }

        func complete(intended: ContinuousClock.Instant, failure: (any Error)?) {
            let now = clock.now
            let latency = UInt64(max(0, (now - intended).totalNanoseconds))
            let t = seconds(now)
            recorder.withLock { $0.record(at: t, latencyNanos: latency, failed: failure != nil) }
            if let failure {
                let text = String(String(describing: failure).prefix(200))
                errors.withLock { samples in
                    if samples.count < 5 && !samples.contains(text) { samples.append(text) }
                }
            }
        }
    }

    /// Runs `operation(index)` for indexes 0, 1, 2, … under the profile (stops sending when
    /// the task is cancelled).
    public func run(_ operation: @escaping @Sendable (Int) async throws -> Void) async -> Measurement {
        await run(
            closedLoop: { state, end, inFlight in
                let clock = state.clock
                await withDiscardingTaskGroup { group in
                    for _ in 0..<inFlight {
                        group.addTask {
                            while clock.now < end && !Task.isCancelled {
                                let index = state.next.wrappingAdd(1, ordering: .relaxed).oldValue
                                let begin = clock.now
                                var failure: (any Error)?
                                do { try await operation(index) } catch { failure = error }
                                state.complete(intended: begin, failure: failure)
                            }
                        }
                    }
                }
            },
            start: { index, done in
                Task {
                    do {
                        try await operation(index)
                        done(nil)
                    } catch {
                        done(error)
                    }
                }
            })
    }

    /// ``run(_:)`` for an operation with a completion callback instead of a task:
    /// `operation(index, done)` starts the operation and `done` (once, with its error or
    /// nil) ends it, on any thread. The closed loop chains each completion to the next start
    /// on the thread that completed it (no task per operation), as a C client's callback
    /// would. A failure may complete at once, on the starting stack: the next operation
    /// then starts on another thread, so the chain never recurses.
    public func run(completing operation: @escaping @Sendable (Int, @escaping @Sendable ((any Error)?) -> Void) -> Void) async -> Measurement {
        await run(
            closedLoop: { state, end, inFlight in
                let clock = state.clock
                let running = Atomic<Int>(inFlight)
                let stopped = Atomic<Bool>(false)
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                        @Sendable func issue() {
                            guard clock.now < end, !stopped.load(ordering: .relaxed) else {
                                if running.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finished.resume() }
                                return
                            }
                            let index = state.next.wrappingAdd(1, ordering: .relaxed).oldValue
                            let begin = clock.now
                            operation(index) { failure in
                                state.complete(intended: begin, failure: failure)
                                // A failure may come at once, on this very stack: go on elsewhere.
                                if failure != nil { DispatchQueue.global().async { issue() } } else { issue() }
                            }
                        }
                        for _ in 0..<inFlight { issue() }
                    }
                } onCancel: {
                    stopped.store(true, ordering: .relaxed)
                }
            },
            start: operation)
    }

    private func run(
        closedLoop: @escaping @Sendable (_ state: RunState, _ end: ContinuousClock.Instant, _ inFlight: Int) async -> Void,
        start: @escaping @Sendable (Int, @escaping @Sendable ((any Error)?) -> Void) -> Void
    ) async -> Measurement {
        let started = Date()
        let state = RunState(origin: ContinuousClock.now + .seconds(warmup), warmup: warmup, duration: duration)
        let clock = state.clock
        let end = state.origin + .seconds(duration)
        let sampler = ResourceSampler(processes: processes)
        let progress = Task { [label, duration, showsProgress] in
            let interactive = isatty(STDERR_FILENO) == 1
            var lastPrinted = clock.now
            var windowStarted = false
            while !state.finished.load(ordering: .relaxed) {
                try? await Task.sleep(for: .milliseconds(250))
                let now = clock.now
                if !windowStarted && now >= state.origin {
                    windowStarted = true
                    sampler.begin()
                }
                if windowStarted { sampler.sample() }
                let every: Duration = interactive ? .seconds(1) : .seconds(5)
                guard showsProgress, now - lastPrinted >= every else { continue }
                lastPrinted = now
                let t = state.seconds(now)
                let (lastSecond, p99, total, failed) = state.recorder.withLock { recorder in
                    let progress = recorder.progress(at: t)
                    return (progress.lastSecondOperations, progress.p99Nanos, recorder.total, recorder.totalErrors)
                }
                let phase = t < 0 ? String(format: "warm-up %.0fs", -t) : t <= duration ? String(format: "%.0f/%.0fs", t, duration) : "finishing"
                let line = "bench \(label): \(phase)  \(lastSecond)/s  p99 \(HTMLReport.micros(Double(p99) / 1_000))  ops \(total)  errors \(failed)"
                FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
            }
            if interactive && showsProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        }

        if let inFlight = closedLoopWorkers {
            await closedLoop(state, end, inFlight)
        } else {
            let limit = maxOutstanding
            let profile = self.profile
            let length = self.duration
            // Operation k is intended where the profile's cumulative count reaches
            // N(-warmup) + k: computed from k, so the schedule never drifts.
            let base = profile.cumulativeOperations(at: -warmup, duration: length) ?? 0
            let stopped = Atomic<Bool>(false)
            // The schedule runs on a thread of its own that sleeps (nanosleep) until each
            // operation's instant and starts it (an async operation as an unstructured task). A task-group child
            // per operation cost a third of the client's CPU at 10 000/s with thousands in
            // flight (`TaskGroup::removeChildTask` walks the group's list), and a
            // `clock.sleep` per operation another third in dispatch's timer machinery; then
            // the client, not the mesh, set the latency. Every operation is awaited below
            // through `outstanding`.
            await withTaskCancellationHandler {
                await withCheckedContinuation { (scheduled: CheckedContinuation<Void, Never>) in
                    let pacer = Thread {
                        var index = 0
                        while let t = profile.sendTime(ofCount: base + Double(index), duration: length), t < length,
                            !stopped.load(ordering: .relaxed)
                        {
                            let intended = state.origin + .seconds(max(t, -warmup))
                            Self.sleep(until: intended, clock: clock)
                            while state.outstanding.load(ordering: .relaxed) >= limit { usleep(200) }
                            state.outstanding.wrappingAdd(1, ordering: .relaxed)
                            start(index) { failure in
                                state.complete(intended: intended, failure: failure)
                                state.outstanding.wrappingSubtract(1, ordering: .relaxed)
                            }
                            index += 1
                        }
                        scheduled.resume()
                    }
                    pacer.name = "mesh-bench-pacer"
                    pacer.start()
                }
            } onCancel: {
                stopped.store(true, ordering: .relaxed)
            }
            while state.outstanding.load(ordering: .relaxed) > 0 { try? await Task.sleep(for: .milliseconds(1)) }
        }
        let resources = sampler.finish(windowSeconds: min(duration, max(0, state.seconds(clock.now))))
        state.finished.store(true, ordering: .relaxed)
        await progress.value
        let recorder = state.recorder.withLock { $0 }
        let profile = self.profile
        let length = self.duration
        return Measurement(
            startedAt: started, recorder: recorder, timeline: recorder.timeline { profile.targetRate(at: $0, duration: length) },
            resources: resources, errorSamples: state.errors.withLock { $0 })
    }

    /// Blocks the calling thread until `instant` (returns at once when it has passed).
    private static func sleep(until instant: ContinuousClock.Instant, clock: ContinuousClock) {
        let remaining = instant - clock.now
        guard remaining > .microseconds(20) else { return }
        let (seconds, attoseconds) = remaining.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var rest = timespec()
        while nanosleep(&request, &rest) == -1 && errno == EINTR { request = rest }
    }

    private var closedLoopWorkers: Int? {
        if case .max(let inFlight) = profile { return inFlight }
        return nil
    }
}

extension LoadGenerator.Measurement {
    /// The result of this measurement.
    public func result(name: String, scenario: String, run: Int, parameters: [String: String], profile: LoadProfile, notes: [String] = []) -> BenchResult {
        var notes = notes
        if !errorSamples.isEmpty { notes.append("errors: " + errorSamples.joined(separator: " | ")) }
        return BenchResult(
            name: name, scenario: scenario, run: run, parameters: parameters, profile: profile.description, startedAt: startedAt,
            warmupSeconds: recorder.warmupSeconds, durationSeconds: recorder.durationSeconds, operations: recorder.operations, errors: recorder.errors,
            histogram: recorder.measured, timeline: timeline, resources: resources, notes: notes)
    }
}

/// A process of the mesh under test (for CPU and memory figures).
public struct MeshProcess: Sendable, Hashable {
    public var name: String
    public var pid: Int32

    public init(name: String, pid: Int32) {
        self.name = name
        self.pid = pid
    }
}

/// Samples CPU time and RSS of processes from `/proc/<pid>/stat` and `/proc/<pid>/statm`
/// (Linux): at the window's start, every 250 ms for the peak, at its end. Processes that
/// cannot be read (gone, another OS) are left out; none readable → ``ResourceUsage/none``.
public final class ResourceSampler: Sendable {
    public struct Reading: Sendable {
        public var cpuSeconds: Double
        public var rssBytes: UInt64
    }

    struct State: Sendable {
        var start: [Int32: Reading] = [:]
        var startedAt: ContinuousClock.Instant?
        var peak: [Int32: UInt64] = [:]
    }

    let processes: [MeshProcess]
    let state = Mutex(State())

    public init(processes: [MeshProcess]) { self.processes = processes }

    public func begin() {
        var readings: [Int32: Reading] = [:]
        for process in processes { readings[process.pid] = Self.read(pid: process.pid) }
        state.withLock {
            $0.start = readings
            $0.startedAt = .now
            $0.peak = readings.mapValues(\.rssBytes)
        }
    }

    public func sample() {
        for process in processes {
            guard let reading = Self.read(pid: process.pid) else { continue }
            state.withLock { $0.peak[process.pid] = max($0.peak[process.pid] ?? 0, reading.rssBytes) }
        }
    }

    public func finish(windowSeconds: Double) -> ResourceUsage {
        let (start, startedAt, peak) = state.withLock { ($0.start, $0.startedAt, $0.peak) }
        guard let startedAt else { return .none }
        let wall = (ContinuousClock.now - startedAt).totalSeconds
        var usage: [ProcessUsage] = []
        for process in processes {
            guard let first = start[process.pid], let last = Self.read(pid: process.pid) else { continue }
            usage.append(
                ProcessUsage(
                    name: process.name, pid: process.pid, cpuPercent: wall > 0 ? (last.cpuSeconds - first.cpuSeconds) / wall * 100 : 0,
                    rssBytes: last.rssBytes, rssPeakBytes: max(peak[process.pid] ?? 0, last.rssBytes),
                    rssDeltaBytes: Int64(last.rssBytes) - Int64(first.rssBytes)))
        }
        return ResourceUsage(processes: usage, windowSeconds: wall)
    }

    /// CPU seconds (user + system) and RSS of `pid`; nil when it cannot be read.
    public static func read(pid: Int32) -> Reading? {
        ProcessStats.read(pid: pid).map { Reading(cpuSeconds: $0.cpuSeconds, rssBytes: $0.residentBytes) }
    }
}
