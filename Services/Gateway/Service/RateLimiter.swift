import Synchronization

/// A token bucket: holds at most `capacity` tokens, gains `refillPerSecond` tokens per
/// second, and each request takes one. Pure (time is passed in), so it is tested without I/O.
///
/// ```swift
/// var bucket = TokenBucket(capacity: 10, refillPerSecond: 5, now: 0)
/// switch bucket.take(now: 0.1) {
/// case .allowed: …
/// case .limited(let retryAfter): …   // seconds until a token is back
/// }
/// ```
public struct TokenBucket: Sendable, Hashable {
    /// The outcome of ``take(now:)``.
    public enum Decision: Sendable, Hashable {
        /// A token was taken.
        case allowed
        /// No token: retry after this many seconds (> 0).
        case limited(retryAfter: Double)
    }

    /// Largest number of tokens (the burst).
    public let capacity: Double
    /// Tokens gained per second (the sustained rate).
    public let refillPerSecond: Double
    /// Tokens now (as of ``updatedAt``).
    public private(set) var tokens: Double
    /// When ``tokens`` was last brought up to date, in seconds on the caller's clock.
    public private(set) var updatedAt: Double

    /// A full bucket.
    /// - Parameters:
    ///   - capacity: burst, ≥ 1.
    ///   - refillPerSecond: sustained rate, > 0.
    ///   - now: the current time in seconds (any monotonic origin).
    public init(capacity: Double, refillPerSecond: Double, now: Double) {
        precondition(capacity >= 1 && refillPerSecond > 0, "a token bucket needs capacity >= 1 and a positive rate")
        self.capacity = capacity
        self.refillPerSecond = refillPerSecond
        self.tokens = capacity
        self.updatedAt = now
    }

    /// Takes one token if there is one.
    /// - Parameter now: the current time in seconds; a time before the last one counts as no time passed.
    public mutating func take(now: Double) -> Decision {
        refill(now: now)
        if tokens >= 1 {
            tokens -= 1
            return .allowed
        }
        return .limited(retryAfter: (1 - tokens) / refillPerSecond)
    }

    /// Whether the bucket is full at `now` (an idle bucket that can be forgotten).
    public func isFull(now: Double) -> Bool {
        tokens + max(0, now - updatedAt) * refillPerSecond >= capacity
    }

    private mutating func refill(now: Double) {
        let elapsed = max(0, now - updatedAt)
        tokens = min(capacity, tokens + elapsed * refillPerSecond)
        updatedAt = max(updatedAt, now)
    }
}

/// Per-key rate limits: one ``TokenBucket`` per API key id, all with the same rate and
/// burst. The table is bounded: past `maxKeys` entries, full (idle) buckets are dropped —
/// forgetting a full bucket changes nothing — and if none is full the oldest-updated go.
///
/// ```swift
/// let limiter = RateLimiter(ratePerSecond: 100, burst: 200)
/// if case .limited(let retryAfter) = limiter.take(key: principal.keyID) { … 429 … }
/// ```
public final class RateLimiter: Sendable {
    /// Sustained requests per second per key.
    public let ratePerSecond: Double
    /// Requests a key may send at once.
    public let burst: Double
    /// Most keys tracked at once.
    public let maxKeys: Int
    private let buckets: Mutex<[String: TokenBucket]>
    private let clock: @Sendable () -> Double

    /// - Parameters:
    ///   - ratePerSecond: sustained rate per key, > 0.
    ///   - burst: bucket size per key, ≥ 1.
    ///   - maxKeys: bound of the table.
    ///   - clock: seconds on a monotonic clock (injected by tests).
    public init(
        ratePerSecond: Double, burst: Double, maxKeys: Int = 100_000,
        clock: @escaping @Sendable () -> Double = RateLimiter.monotonicSeconds
    ) {
        self.ratePerSecond = ratePerSecond
        self.burst = max(1, burst)
        self.maxKeys = max(1, maxKeys)
        self.buckets = Mutex([:])
        self.clock = clock
    }

    /// Takes a token from `key`'s bucket.
    public func take(key: String) -> TokenBucket.Decision {
        let now = clock()
        return buckets.withLock { buckets in
            if buckets[key] == nil {
                if buckets.count >= maxKeys { Self.evict(&buckets, now: now, keep: maxKeys - 1) }
                buckets[key] = TokenBucket(capacity: burst, refillPerSecond: ratePerSecond, now: now)
            }
            return buckets[key]!.take(now: now)
        }
    }

    /// Keys currently tracked.
    public var trackedKeys: Int { buckets.withLock { $0.count } }

    private static func evict(_ buckets: inout [String: TokenBucket], now: Double, keep: Int) {
        for (key, bucket) in buckets where bucket.isFull(now: now) { buckets[key] = nil }
        guard buckets.count > keep else { return }
        let oldest = buckets.sorted { $0.value.updatedAt < $1.value.updatedAt }.prefix(buckets.count - keep)
        for (key, _) in oldest { buckets[key] = nil }
    }

    /// Seconds since an arbitrary origin, from the monotonic clock.
    public static let monotonicSeconds: @Sendable () -> Double = {
        let now = ContinuousClock.now.duration(to: origin)
        return -(Double(now.components.seconds) + Double(now.components.attoseconds) / 1e18)
    }
    private static let origin = ContinuousClock.now
}
