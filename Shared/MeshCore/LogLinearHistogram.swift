/// A mergeable distribution of non-negative integers (latencies in ns, sizes in bytes)
/// with log-linear (HDR-style) buckets — the `HISTOGRAM_SCHEME_LOG_LINEAR` layout of
/// `MetricSnapshot.Histogram` in `Shared/Proto/metrics.proto`.
///
/// With precision `p`: values below `2^p` have a bucket each; above, each power of two is
/// split into `2^p` equal buckets, so a bucket's width is at most `2^-p` of its values
/// (p = 5: ~3 %). Merging two histograms of the same precision adds counts index by index
/// and is exact, which is why percentiles are computed from merged histograms and never
/// averaged.
///
/// ```swift
/// var latency = LogLinearHistogram()
/// latency.record(850_000)            // 850 µs in ns
/// latency.percentile(0.99)           // ≈ 850_000 (within 3 %)
/// ```
public struct LogLinearHistogram: Sendable, Hashable {
    /// The default precision: 32 buckets per power of two.
    public static let defaultPrecisionBits = 5

    /// `p` of the scheme, in `0...16`.
    public let precisionBits: Int
    /// Bucket counts, dense from index 0 up to the highest used bucket.
    public private(set) var counts: [UInt64] = []
    /// Number of observations.
    public private(set) var count: UInt64 = 0
    /// Sum of observations (wraps modulo 2^64).
    public private(set) var sum: UInt64 = 0
    /// Smallest observation; 0 when empty.
    public private(set) var min: UInt64 = 0
    /// Largest observation; 0 when empty.
    public private(set) var max: UInt64 = 0

    public init(precisionBits: Int = LogLinearHistogram.defaultPrecisionBits) {
        precondition((0...16).contains(precisionBits), "precision bits must be 0...16")
        self.precisionBits = precisionBits
    }

    /// Rebuilds a histogram from its wire form (counts starting at `firstBucket`).
    /// - Throws: ``MeshError`` `invalid_argument` when the precision or bucket range is impossible.
    public init(precisionBits: Int, firstBucket: Int, counts: [UInt64], sum: UInt64, min: UInt64, max: UInt64) throws(MeshError) {
        guard (0...16).contains(precisionBits) else { throw MeshError(.invalidArgument, "histogram precision must be 0...16") }
        let bucketLimit = (65 - precisionBits) << precisionBits
        guard firstBucket >= 0, firstBucket + counts.count <= bucketLimit else {
            throw MeshError(.invalidArgument, "histogram buckets out of range")
        }
        self.precisionBits = precisionBits
        var dense = [UInt64](repeating: 0, count: firstBucket + counts.count)
        var total: UInt64 = 0
        for (offset, value) in counts.enumerated() {
            dense[firstBucket + offset] = value
            total &+= value
        }
        while dense.last == 0 { dense.removeLast() }
        self.counts = dense
        self.count = total
        self.sum = sum
        self.min = total == 0 ? 0 : min
        self.max = total == 0 ? 0 : max
    }

    /// The bucket index of `value` at precision `p`.
    @inlinable
    public static func bucketIndex(_ value: UInt64, precisionBits p: Int) -> Int {
        if value < (1 << p) { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount
        let mantissa = Int(value >> UInt64(exponent - p)) - (1 << p)
        return (exponent - p + 1) << p + mantissa
    }

    /// The smallest value that falls in bucket `index` at precision `p`.
    public static func lowerBound(ofBucket index: Int, precisionBits p: Int) -> UInt64 {
        if index < (1 << p) { return UInt64(index) }
        let exponent = index >> p + p - 1
        let mantissa = index & ((1 << p) - 1)
        return UInt64((1 << p) + mantissa) << UInt64(exponent - p)
    }

    /// The largest value that falls in bucket `index` at precision `p`.
    public static func upperBound(ofBucket index: Int, precisionBits p: Int) -> UInt64 {
        if index < (1 << p) { return UInt64(index) }
        let exponent = index >> p + p - 1
        let width = UInt64(1) << UInt64(exponent - p)
        return lowerBound(ofBucket: index, precisionBits: p) &+ (width &- 1)
    }

    /// Records one observation (or `times` equal ones).
    public mutating func record(_ value: UInt64, times: UInt64 = 1) {
        guard times > 0 else { return }
        let index = Self.bucketIndex(value, precisionBits: precisionBits)
        if index >= counts.count { counts.append(contentsOf: repeatElement(0, count: index - counts.count + 1)) }
        counts[index] &+= times
        if count == 0 {
            min = value
            max = value
        } else {
            min = Swift.min(min, value)
            max = Swift.max(max, value)
        }
        count &+= times
        sum &+= value &* times
    }

    /// Adds every observation of `other`. Histograms of different precision are merged at
    /// the smaller one (each fine bucket lies inside exactly one coarse bucket).
    /// - Returns: the merged histogram.
    public func merged(with other: LogLinearHistogram) -> LogLinearHistogram {
        let p = Swift.min(precisionBits, other.precisionBits)
        var result = LogLinearHistogram(precisionBits: p)
        for source in [self, other] where source.count > 0 {
            for (index, value) in source.counts.enumerated() where value > 0 {
                let target = source.precisionBits == p
                    ? index : Self.bucketIndex(Self.lowerBound(ofBucket: index, precisionBits: source.precisionBits), precisionBits: p)
                if target >= result.counts.count { result.counts.append(contentsOf: repeatElement(0, count: target - result.counts.count + 1)) }
                result.counts[target] &+= value
            }
            result.min = result.count == 0 ? source.min : Swift.min(result.min, source.min)
            result.max = result.count == 0 ? source.max : Swift.max(result.max, source.max)
            result.count &+= source.count
            result.sum &+= source.sum
        }
        return result
    }

    /// The value at quantile `q` (0...1): the upper bound of the bucket holding the
    /// `ceil(q × count)`-th smallest observation, clamped to the observed min and max
    /// (so the answer is never below the true value by more than one bucket width).
    /// Returns 0 when empty.
    public func percentile(_ q: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let clamped = Swift.max(0, Swift.min(1, q))
        let rank = Swift.max(1, UInt64((clamped * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for (index, value) in counts.enumerated() where value > 0 {
            seen &+= value
            if seen >= rank {
                let upper = Self.upperBound(ofBucket: index, precisionBits: precisionBits)
                return Swift.max(min, Swift.min(max, upper))
            }
        }
        return max
    }

    /// Mean of the observations; 0 when empty.
    public var mean: Double { count == 0 ? 0 : Double(sum) / Double(count) }

    /// The used bucket range in wire form: index of the first non-empty bucket and the
    /// counts from there to the last non-empty one.
    public var sparseCounts: (firstBucket: Int, counts: ArraySlice<UInt64>) {
        guard let first = counts.firstIndex(where: { $0 > 0 }) else { return (0, []) }
        return (first, counts[first...])
    }
}
