import Dispatch
import Logging
import Synchronization

/// A snapshot of the pool.
public struct PoolStatistics: Sendable, Hashable, CustomStringConvertible {
    /// The configured maximum.
    public var maxSize: Int
    /// Connections open or being opened.
    public var size: Int
    /// Open connections waiting in the pool.
    public var idle: Int
    /// Connections leased to callers (or being opened or probed).
    public var inUse: Int
    /// Callers waiting for a connection.
    public var waiting: Int
    /// Connections opened to replace a broken one.
    public var reconnects: Int
    /// Broken connections discarded.
    public var discarded: Int

    public var description: String {
        "PoolStatistics(size: \(size)/\(maxSize), idle: \(idle), inUse: \(inUse), waiting: \(waiting), "
            + "reconnects: \(reconnects), discarded: \(discarded))"
    }
}

/// The bounded connection pool behind `Store`.
///
/// - Connections are opened lazily, up to `poolSize`; a caller that finds none idle and no
///   room waits in FIFO order for at most `acquireTimeout` (`poolTimeout` afterwards).
/// - An idle connection is checked before it is handed out (no round trip: pending input
///   is read and the status inspected); a broken one is dropped and the caller moves on
///   to the next or opens a fresh one. So after a server restart the pool recovers on the
///   next acquire; the operation that was running when the server went away fails with
///   `connectionLost` and is never retried by the pool (it may or may not have committed).
/// - A connection returned broken or with a transaction still open is discarded.
/// - A timer probes connections idle longer than `healthCheckInterval` with `SELECT 1`.
final class ConnectionPool: Sendable {
    /// What a waiter is given: a connection, or permission to open one.
    enum Grant {
        case connection(StoreConnection)
        case slot
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Result<Grant, StoreError>, Never>
    }

    private struct State {
        var idle: [StoreConnection] = []
        /// Open, opening, leased or being probed.
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
        var discarded = 0
        var reconnects = 0
        /// Discards not yet made good by a new connection.
        var replacementsOwed = 0

        mutating func removeWaiter(_ id: UInt64) -> Waiter? {
            guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return waiters.remove(at: index)
        }

        /// When someone waits, hands them the free place (they open a connection).
        mutating func handOverSlot() -> Waiter? {
            guard !closed, !waiters.isEmpty else { return nil }
            open += 1
            return waiters.removeFirst()
        }
    }

    let configuration: StoreConfiguration
    let logger: Logger
    private let state = Mutex(State())
    private let healthTimer: Mutex<HealthTimer?> = Mutex(nil)

    init(configuration: StoreConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts the idle probe; separate from `init` so the timer can hold a weak reference.
    func startHealthChecks() {
        guard let interval = configuration.healthCheckInterval, interval > .zero else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "mesh.store.pool.health"))
        let nanoseconds = Int(interval.components.seconds) * 1_000_000_000 + Int(interval.components.attoseconds / 1_000_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(nanoseconds), repeating: .nanoseconds(nanoseconds))
        timer.setEventHandler { [weak self] in self?.probeIdleConnections(olderThan: interval) }
        timer.resume()
        healthTimer.withLock { $0 = HealthTimer(timer: timer) }
    }

    var statistics: PoolStatistics {
        state.withLock { state in
            PoolStatistics(
                maxSize: configuration.poolSize, size: state.open, idle: state.idle.count,
                inUse: state.open - state.idle.count, waiting: state.waiters.count,
                reconnects: state.reconnects, discarded: state.discarded)
        }
    }

    // MARK: Acquire and release

    /// Leases a connection, runs `body`, and returns the connection (or discards it when it
    /// is broken or left inside a transaction).
    func withConnection<T>(_ body: (StoreConnection) async throws -> T) async throws -> T {
        let connection = try await acquire()
        do {
            let value = try await body(connection)
            release(connection)
            return value
        } catch {
            release(connection)
            throw error
        }
    }

    /// The same with a body that throws only `StoreError`.
    func withConnection<T>(_ body: (StoreConnection) async throws(StoreError) -> T) async throws(StoreError) -> T {
        let connection = try await acquire()
        do throws(StoreError) {
            let value = try await body(connection)
            release(connection)
            return value
        } catch {
            release(connection)
            throw error
        }
    }

    func acquire() async throws(StoreError) -> StoreConnection {
        while true {
            let grant = try await nextGrant()
            switch grant {
            case .connection(let connection):
                if connection.handle.checkIdle() { return connection }
                logger.debug("discarding broken idle connection")
                discard(connection)
            case .slot:
                do throws(StoreError) {
                    let connection = try await StoreConnection.open(configuration, logger: logger)
                    state.withLock { state in
                        if state.replacementsOwed > 0 {
                            state.replacementsOwed -= 1
                            state.reconnects += 1
                        }
                    }
                    if state.withLock({ $0.closed }) {
                        discard(connection)
                        throw StoreError(.closed, operation: "acquire")
                    }
                    return connection
                } catch {
                    slotFailed()
                    throw error
                }
            }
        }
    }

    /// Takes an idle connection, room to open one, or waits for either.
    private func nextGrant() async throws(StoreError) -> Grant {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let result: Result<Grant, StoreError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Grant, StoreError>, Never>) in
                let immediate: Result<Grant, StoreError>? = state.withLock { state in
                    if state.closed { return .failure(StoreError(.closed, operation: "acquire")) }
                    if let connection = state.idle.popLast() { return .success(.connection(connection)) }
                    if state.open < configuration.poolSize {
                        state.open += 1
                        return .success(.slot)
                    }
                    if Task.isCancelled { return .failure(StoreError(.cancelled, operation: "acquire")) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                } else {
                    scheduleTimeout(id)
                }
            }
        } onCancel: {
            let waiter = state.withLock { $0.removeWaiter(id) }
            waiter?.continuation.resume(returning: .failure(StoreError(.cancelled, operation: "acquire")))
        }
        return try result.get()
    }

    private func scheduleTimeout(_ id: UInt64) {
        let timeout = configuration.acquireTimeout
        let nanoseconds = Int(timeout.components.seconds) * 1_000_000_000 + Int(timeout.components.attoseconds / 1_000_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { [weak self] in
            guard let self else { return }
            guard let waiter = self.state.withLock({ $0.removeWaiter(id) }) else { return }
            self.logger.debug("pool acquire timed out", metadata: ["mesh.store.pool.size": "\(self.configuration.poolSize)"])
            waiter.continuation.resume(
                returning: .failure(StoreError(.poolTimeout, operation: "acquire", context: "no connection free within \(timeout)")))
        }
    }

    /// Returns a leased connection: to the first waiter, to the idle list, or — when it is
    /// broken, inside a transaction, or the pool is closed — closes it.
    func release(_ connection: StoreConnection) {
        guard connection.handle.isOK, connection.handle.transactionState == .idle else {
            logger.debug("discarding connection returned broken or inside a transaction")
            discard(connection)
            return
        }
        connection.lastReleased.withLock { $0 = .now }
        let waiter: Waiter? = state.withLock { state in
            if state.closed {
                state.open -= 1
                return nil
            }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(connection)
            return nil
        }
        waiter?.continuation.resume(returning: .success(.connection(connection)))
    }

    /// Drops a connection (its handle is finished when the last reference goes) and hands
    /// its place to a waiter, who will open a new one.
    private func discard(_ connection: StoreConnection) {
        let waiter: Waiter? = state.withLock { state in
            state.open -= 1
            state.discarded += 1
            state.replacementsOwed += 1
            return state.handOverSlot()
        }
        waiter?.continuation.resume(returning: .success(.slot))
    }

    /// Opening a connection failed: give the place back.
    private func slotFailed() {
        let waiter: Waiter? = state.withLock { state in
            state.open -= 1
            return state.handOverSlot()
        }
        waiter?.continuation.resume(returning: .success(.slot))
    }

    // MARK: Health and shutdown

    /// Probes connections idle for longer than `interval` with `SELECT 1`, each on its own
    /// queue; good ones go back to the pool, broken ones are discarded.
    private func probeIdleConnections(olderThan interval: Duration) {
        let now = ContinuousClock.now
        let stale: [StoreConnection] = state.withLock { state in
            guard !state.closed else { return [] }
            let (old, fresh) = state.idle.reduce(into: ([StoreConnection](), [StoreConnection]())) { result, connection in
                if now - connection.lastReleased.withLock({ $0 }) >= interval { result.0.append(connection) } else { result.1.append(connection) }
            }
            state.idle = fresh
            return old
        }
        for connection in stale {
            connection.probe { [weak self] healthy in
                guard let self else { return }
                if healthy { self.release(connection) } else {
                    self.logger.debug("idle health check failed; discarding connection")
                    self.discard(connection)
                }
            }
        }
    }

    /// Closes idle connections, fails waiters with `closed`; leased connections are closed
    /// when returned.
    func close() {
        healthTimer.withLock { timer in
            timer?.timer.cancel()
            timer = nil
        }
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            let idle = state.idle
            let waiters = state.waiters
            state.idle = []
            state.waiters = []
            state.open -= idle.count
            return (idle, waiters)
        }
        _ = idle  // released here; each handle runs PQfinish in deinit
        for waiter in waiters { waiter.continuation.resume(returning: .failure(StoreError(.closed, operation: "acquire"))) }
    }

    deinit { healthTimer.withLock { $0?.timer.cancel() } }
}

/// The idle-probe timer. `@unchecked Sendable`: dispatch sources are thread-safe; the
/// protocol just does not say so.
private final class HealthTimer: @unchecked Sendable {
    let timer: any DispatchSourceTimer
    init(timer: any DispatchSourceTimer) { self.timer = timer }
}
