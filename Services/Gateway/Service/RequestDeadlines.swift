import Foundation
import HTTPTypes
import MeshCore

/// Request deadlines without a sleeping task or a timer per request: the task running a
/// request's body registers itself with its deadline, and one timer thread cancels the
/// tasks whose deadline passed.
///
/// A racing pair of child tasks (the body, and a sleeper) per request cost two task
/// creations, a Dispatch timer and a cancellation each time.
///
/// The body runs in one child task (`async let`). At the deadline the timer thread cancels
/// that task (cooperatively, as a task group's `cancelAll` would): NATS requests, body reads
/// and sleeps end at once with an error, which ``run(timeout:_:)`` turns into a 504. A body
/// that finishes anyway is answered as it is. The deadline fires within a few milliseconds
/// of its time (a condition wait on the earliest deadline).
///
/// ```swift
/// let deadlines = RequestDeadlines()
/// let response = try await deadlines.run(timeout: .seconds(15)) { try await handle(request) }
/// ```
final class RequestDeadlines: Sendable {
    private let core = Core()

    init() {
        let core = self.core
        let thread = Thread { core.timerLoop() }
        thread.name = "gateway-deadlines"
        thread.stackSize = 256 * 1024
        thread.start()
    }

    deinit { core.stop() }

    /// Requests registered and still running (for tests).
    var inFlight: Int { core.inFlight }

    /// Runs `body` in a child task; past `timeout` that task is cancelled and, unless the
    /// body still returned a response, the answer is 504. The calling task itself is never
    /// cancelled by the deadline, so it can still write the 504.
    /// - Throws: ``APIError`` 504 (`timeout`) when the deadline passed and the body threw
    ///   (whatever it threw on cancellation); otherwise what `body` throws.
    func run<T: Sendable>(timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let deadline = Core.now() &+ UInt64(max(1, timeout.totalNanoseconds))
        async let child = core.runRegistered(deadline: deadline, body)
        let (result, expired) = await child
        if expired, case .failure = result {
            throw APIError(.gatewayTimeout, code: MeshError.Code.timeout.rawValue, "the request took longer than \(timeout)")
        }
        return try result.get()
    }

    /// The registered requests and the timer thread's loop.
    private final class Core: @unchecked Sendable {
        // @unchecked: every stored property is guarded by `condition`.
        //
        // Why holding an `UnsafeCurrentTask` here is safe: an entry is added by its task before
        // the body runs and removed by that same task (`unregister`) before `run` returns, and
        // the timer thread calls `cancel()` only while it holds the lock and finds the entry.
        // The task therefore cannot complete — nor its memory be reused — while it is cancelled.
        private struct Entry {
            let deadline: UInt64
            let task: UnsafeCurrentTask
            var expired = false
        }

        private let condition = NSCondition()
        private var entries: [UInt64: Entry] = [:]
        private var nextID: UInt64 = 0
        /// When the timer thread will look next (`.max`: only when signalled).
        private var wakeAt: UInt64 = .max
        private var stopped = false

        static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

        var inFlight: Int {
            condition.lock()
            defer { condition.unlock() }
            return entries.count
        }

        /// Runs `body` in the current task, registered with `deadline`; returns its outcome and
        /// whether the deadline passed (the task was cancelled).
        func runRegistered<T>(deadline: UInt64, _ body: () async throws -> T) async -> (Result<T, any Error>, expired: Bool) {
            let id = withUnsafeCurrentTask { task in task.map { register($0, deadline: deadline) } }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            return (result, id.map(unregister) ?? false)
        }

        func register(_ task: UnsafeCurrentTask, deadline: UInt64) -> UInt64 {
            condition.lock()
            defer { condition.unlock() }
            nextID &+= 1
            entries[nextID] = Entry(deadline: deadline, task: task)
            if deadline < wakeAt { condition.signal() }
            return nextID
        }

        /// Removes the entry; returns whether its deadline had passed (its task was cancelled).
        func unregister(_ id: UInt64) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            return entries.removeValue(forKey: id)?.expired ?? false
        }

        func stop() {
            condition.lock()
            stopped = true
            condition.signal()
            condition.unlock()
        }

        func timerLoop() {
            condition.lock()
            defer { condition.unlock() }
            while !stopped {
                let now = Self.now()
                var earliest = UInt64.max
                for (id, entry) in entries where !entry.expired {
                    if entry.deadline <= now {
                        entries[id]?.expired = true
                        entry.task.cancel()
                    } else {
                        earliest = min(earliest, entry.deadline)
                    }
                }
                wakeAt = earliest
                if earliest == .max {
                    condition.wait()
                } else {
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(earliest - now) / 1e9))
                }
            }
        }
    }
}
