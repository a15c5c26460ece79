import CNats
import Foundation
import Synchronization

/// Library-wide setup: `nats_Open` exactly once, before the first connection.
enum NatsLibrary {
    /// How many times cnats retries a busy mutex (`pthread_mutex_trylock` in a loop) before
    /// it sleeps on it. cnats' default (`nats_Open(-1)`) is 2 000 tries, which on a machine
    /// with few cores burns the time slice the lock's holder needs: with many threads on one
    /// connection (delivery threads, the flusher, the cooperative pool) `natsMutex_Lock`
    /// was 12 % of a bench client's CPU. Measured on 2 cores (release, `meshctl bench run`,
    /// a local mesh with 2 workers, 10 s windows):
    ///
    /// | tries | actions/s (256 in flight) | tasks/s (512 in flight) | 1 request at a time, p50 |
    /// |---|---|---|---|
    /// | 2 000 (default) | 12 600–16 000 | 3 200–3 500 | 123 µs |
    /// | 200 | 15 600–19 400 | 4 200–5 200 | 125–131 µs |
    /// | 50 | 20 700–21 700 | 4 800 | 125–127 µs |
    /// | 0 | 17 100–21 500 | 2 800–3 100 | 148 µs |
    static let lockSpinCount: Int64 = 50

    private static let opened: natsStatus = nats_Open(lockSpinCount)

    /// Whether messages can be freed on the calling thread (``destroy(_:)``): true when a
    /// message's head is the garbage-collector item `meshnats_gc_item` describes, checked
    /// once against the linked library (`meshnats_msg_layout_holds`).
    static let freesOnCallingThread: Bool = {
        guard opened == NATS_OK else { return false }  // the check destroys a message: the library must be open
        return meshnats_msg_layout_holds() == 1
    }()

    /// Destroys a message cnats handed over: freed at once on this thread when the layout
    /// check passed (`meshnats_msg_destroy`), else through cnats' garbage-collector thread
    /// (`natsMsg_Destroy`, which costs a lock and often a thread wake-up per message).
    /// The corresponding C function is `natsMsg_Destroy`.
    @inline(__always)
    static func destroy(_ msg: OpaquePointer?) {
        if freesOnCallingThread { meshnats_msg_destroy(msg) } else { natsMsg_Destroy(msg) }
    }

    /// Opens the C library (thread-safe, lazy).
    /// The corresponding C function is `nats_Open`.
    static func open() throws(NatsError) {
        let status = opened
        guard status == NATS_OK else { throw NatsError(status: status, operation: "nats_Open") }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up so a small positive duration never becomes 0.
    var milliseconds: Int64 {
        let (seconds, attos) = components
        let ms = seconds * 1_000 + attos / 1_000_000_000_000_000
        let rest = attos % 1_000_000_000_000_000
        return rest > 0 ? ms + 1 : ms
    }

    /// Milliseconds, at least 1 (cnats rejects 0 timeouts).
    var timeoutMilliseconds: Int64 { max(1, milliseconds) }

    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attos) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product + attos / 1_000_000_000
    }
}

/// Subject and name checks run before any C call, so bad input fails with a clear
/// ``NatsError/Code/invalidSubject`` rather than a protocol error.
enum SubjectRules {
    /// A subject to publish to: non-empty tokens, no whitespace, no wildcards.
    static func validatePublish(_ subject: String, _ op: StaticString) throws(NatsError) {
        try validate(subject, wildcards: false, op)
    }

    /// A subject to subscribe to: as for publishing, but `*` tokens and a final `>` token
    /// are allowed.
    static func validateSubscribe(_ subject: String, _ op: StaticString) throws(NatsError) {
        try validate(subject, wildcards: true, op)
    }

    /// A queue group name: non-empty, no whitespace.
    static func validateQueue(_ queue: String, _ op: StaticString) throws(NatsError) {
        guard !queue.isEmpty else { throw .invalidSubject(op, "empty queue group") }
        for byte in queue.utf8 where isWhitespaceOrControl(byte) {
            throw .invalidSubject(op, "queue group contains whitespace")
        }
    }

    /// A JetStream or KV name (stream, consumer, bucket): non-empty, no whitespace, no `.`,
    /// `*`, `>`, path separators.
    static func validateName(_ name: String, kind: String, _ op: StaticString) throws(NatsError) {
        guard !name.isEmpty else { throw NatsError(code: .invalidArgument, operation: "\(op)", detail: "empty \(kind) name") }
        for byte in name.utf8 {
            if isWhitespaceOrControl(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "*")
                || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\")
            {
                throw NatsError(code: .invalidArgument, operation: "\(op)", detail: "invalid \(kind) name")
            }
        }
    }

    /// A KV key as cnats' `kvStore_*` functions accept it: letters, digits and `-_/=.`, not
    /// starting or ending with `.`.
    static func validateKey(_ key: String, _ op: StaticString) throws(NatsError) {
        let bytes = key.utf8
        let valid =
            !bytes.isEmpty && bytes.first != UInt8(ascii: ".") && bytes.last != UInt8(ascii: ".")
            && bytes.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
                case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "."): true
                default: false
                }
            }
        guard valid else { throw NatsError(code: .invalidArgument, operation: "\(op)", detail: "invalid key") }
    }

    @inline(__always)
    private static func isWhitespaceOrControl(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte == 0x7F
    }

    private static func validate(_ subject: String, wildcards: Bool, _ op: StaticString) throws(NatsError) {
        var utf8 = subject.utf8
        let ok: Bool? = utf8.withContiguousStorageIfAvailable { scan($0, wildcards: wildcards) }
        if let ok {
            if !ok { throw .invalidSubject(op, "invalid subject") }
            return
        }
        var copy = subject
        copy.makeContiguousUTF8()
        utf8 = copy.utf8
        if !(utf8.withContiguousStorageIfAvailable { scan($0, wildcards: wildcards) } ?? false) {
            throw .invalidSubject(op, "invalid subject")
        }
    }

    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>, wildcards: Bool) -> Bool {
        if bytes.isEmpty { return false }
        var tokenStart = 0
        var index = 0
        let count = bytes.count
        while index <= count {
            if index == count || bytes[index] == UInt8(ascii: ".") {
                let length = index - tokenStart
                if length == 0 { return false }
                if length == 1 {
                    let byte = bytes[tokenStart]
                    if byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">") {
                        if !wildcards { return false }
                        if byte == UInt8(ascii: ">") && index != count { return false }
                    }
                }
                tokenStart = index + 1
            } else if isWhitespaceOrControl(bytes[index]) {
                return false
            }
            index += 1
        }
        return true
    }
}

/// Owns C strings duplicated for the duration of one C call (configuration structs hold
/// `const char *` fields); everything is freed when the arena goes away.
final class CStringArena {
    private var pointers: [UnsafeMutablePointer<CChar>] = []
    private var arrays: [UnsafeMutablePointer<UnsafePointer<CChar>?>] = []
    private var int64s: [UnsafeMutablePointer<Int64>] = []

    init() {}

    /// A NUL-terminated copy of `string`, valid until the arena is released.
    func dup(_ string: String) -> UnsafePointer<CChar> {
        let pointer = strdup(string)!
        pointers.append(pointer)
        return UnsafePointer(pointer)
    }

    /// `dup` for an optional string (nil stays nil).
    func dup(_ string: String?) -> UnsafePointer<CChar>? {
        string.map { dup($0) }
    }

    /// A C array of C strings.
    func array(_ strings: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let pointer = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: max(1, strings.count))
        for (index, string) in strings.enumerated() { pointer[index] = dup(string) }
        arrays.append(pointer)
        return pointer
    }

    /// A C array of int64 values.
    func int64Array(_ values: [Int64]) -> UnsafeMutablePointer<Int64> {
        let pointer = UnsafeMutablePointer<Int64>.allocate(capacity: max(1, values.count))
        for (index, value) in values.enumerated() { pointer[index] = value }
        int64s.append(pointer)
        return pointer
    }

    deinit {
        for pointer in pointers { free(pointer) }
        for pointer in arrays { pointer.deallocate() }
        for pointer in int64s { pointer.deallocate() }
    }
}

/// Runs a blocking C call (a JetStream fetch, a KV watcher step, a synchronous ack) on a
/// fresh thread so that no cooperative-pool thread is ever blocked.
enum BlockingCall {
    static func run<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.name = name
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }
}

/// A bounded multi-producer queue consumed asynchronously: the hand-off between cnats
/// threads and Swift tasks.
///
/// Producers either `offer` (never blocks; reports a drop when full — used on cnats
/// delivery threads) or `put` (blocks the producing thread while full — used by threads
/// we own, like a KV watcher loop). Consumers `await next()`; `finish()` ends the
/// sequence after the buffered elements have been consumed.
final class BoundedChannel<Element: Sendable>: @unchecked Sendable {
    // Safe: every stored property is read and written only while holding `condition`.
    private let condition = NSCondition()
    private var storage: [Element] = []
    private var head = 0
    private var waiters: [CheckedContinuation<Element?, Never>] = []
    private var finished = false
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    enum OfferResult { case enqueued, dropped, finished }

    private var countLocked: Int { storage.count - head }

    /// Adds an element unless the buffer is full or finished. Never blocks.
    func offer(_ element: Element) -> OfferResult {
        condition.lock()
        if finished {
            condition.unlock()
            return .finished
        }
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            condition.unlock()
            waiter.resume(returning: element)
            return .enqueued
        }
        if countLocked >= capacity {
            condition.unlock()
            return .dropped
        }
        storage.append(element)
        condition.unlock()
        return .enqueued
    }

    /// Adds an element, blocking the calling (non-cooperative) thread while the buffer is
    /// full. Returns false when the channel was finished.
    func put(_ element: Element) -> Bool {
        condition.lock()
        while !finished && waiters.isEmpty && countLocked >= capacity { condition.wait() }
        if finished {
            condition.unlock()
            return false
        }
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            condition.unlock()
            waiter.resume(returning: element)
            return true
        }
        storage.append(element)
        condition.unlock()
        return true
    }

    /// Elements currently buffered.
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return countLocked
    }

    var isFinished: Bool {
        condition.lock()
        defer { condition.unlock() }
        return finished
    }

    /// Ends the sequence: waiting consumers get nil once the buffer is empty; producers
    /// are released. Idempotent.
    func finish(discardBuffered: Bool = false) {
        condition.lock()
        finished = true
        if discardBuffered {
            storage.removeAll()
            head = 0
        }
        let pending = countLocked == 0 ? waiters : []
        if countLocked == 0 { waiters.removeAll() }
        condition.broadcast()
        condition.unlock()
        for waiter in pending { waiter.resume(returning: nil) }
    }

    private func popLocked() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 4096)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// The next element, or nil when finished and drained (or the task was cancelled).
    private func pollFast() -> (element: Element?, finished: Bool) {
        condition.lock()
        defer { condition.unlock() }
        if let element = popLocked() {
            condition.signal()
            return (element, false)
        }
        return (nil, finished)
    }

    func next() async -> Element? {
        let fast = pollFast()
        if let element = fast.element { return element }
        if fast.finished { return nil }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                condition.lock()
                if let element = popLocked() {
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: element)
                } else if finished || Task.isCancelled {
                    condition.unlock()
                    continuation.resume(returning: nil)
                } else {
                    waiters.append(continuation)
                    condition.unlock()
                }
            }
        } onCancel: {
            condition.lock()
            let pending = waiters
            waiters.removeAll()
            condition.unlock()
            for waiter in pending { waiter.resume(returning: nil) }
        }
    }
}

/// A one-shot event (a subscription completing, a connection closing) that tasks can
/// await with a timeout.
final class CompletionSignal: Sendable {
    private struct State {
        var done = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var expired: Set<Int> = []
    }
    private let state = Mutex(State())

    init() {}

    var isDone: Bool { state.withLock { $0.done } }

    func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.done = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    private func expire(_ id: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
            state.expired.insert(id)
            return nil
        }
        waiter?.resume(returning: false)
    }

    /// Waits until `signal()` or until `timeout` passes. Returns whether it was signalled.
    func wait(timeout: Duration) async -> Bool {
        let id: Int? = state.withLock { state in
            if state.done { return nil }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return true }
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    let immediate = self.state.withLock { state -> Bool? in
                        if state.done { return true }
                        if state.expired.remove(id) != nil { return false }
                        state.waiters[id] = continuation
                        return nil
                    }
                    if let immediate { continuation.resume(returning: immediate) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var result = false
            while let next = await group.next() {
                if let signalled = next {
                    result = signalled
                    group.cancelAll()
                    break
                }
                self.expire(id)  // timer fired: release the waiting child with `false`
            }
            return result
        }
    }
}
