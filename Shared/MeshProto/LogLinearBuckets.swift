/// The bucket layout of `HistogramScheme.logLinear` (HDR-style), shared by every producer
/// and the collector so histograms merge exactly.
///
/// With `p` precision bits: values below `2^p` have one bucket each (`index(v) = v`);
/// above, with `e = floor(log2 v)` and `m = (v >> (e - p)) - 2^p`,
/// `index(v) = (e - p + 1) * 2^p + m`. Each power-of-two range is split into `2^p` equal
/// buckets, so a bucket's width is at most `2^-p` of its lower bound (p = 3: 12.5 %,
/// p = 5: 3.1 %). Every `UInt64` has a bucket; there are `(65 - p) * 2^p` in all.
///
/// ```swift
/// let i = LogLinearBuckets.index(of: 1_234, precisionBits: 5)   // 1_234 µs
/// LogLinearBuckets.lowerBound(ofBucket: i, precisionBits: 5)    // 1_216
/// ```
public enum LogLinearBuckets {
    /// Precision used unless a histogram says otherwise: 5 bits (≤ 3.1 % bucket width).
    public static let defaultPrecisionBits: UInt32 = 5
    /// Largest supported precision.
    public static let maxPrecisionBits: UInt32 = 16

    /// The bucket holding `value`.
    /// - Precondition: `precisionBits <= maxPrecisionBits`.
    public static func index(of value: UInt64, precisionBits p: UInt32) -> Int {
        let p = Int(p)
        if value < (UInt64(1) << p) { return Int(value) }
        let e = 63 - value.leadingZeroBitCount
        let m = Int(value >> (e - p)) - (1 << p)
        return (e - p + 1) << p + m
    }

    /// The smallest value in bucket `index`.
    public static func lowerBound(ofBucket index: Int, precisionBits p: UInt32) -> UInt64 {
        let p = Int(p)
        if index < (1 << p) { return UInt64(index) }
        let block = index >> p  // >= 1
        let m = index & ((1 << p) - 1)
        return UInt64((1 << p) + m) << (block - 1)
    }

    /// The largest value in bucket `index` (inclusive).
    public static func upperBound(ofBucket index: Int, precisionBits p: UInt32) -> UInt64 {
        let p = Int(p)
        if index < (1 << p) { return UInt64(index) }
        let width = UInt64(1) << ((index >> p) - 1)
        return lowerBound(ofBucket: index, precisionBits: UInt32(p)) &+ (width &- 1)
    }

    /// Number of buckets at precision `p`.
    public static func bucketCount(precisionBits p: UInt32) -> Int { (65 - Int(p)) << Int(p) }
}

extension MetricSnapshot.Histogram {
    /// Why two histograms cannot be merged.
    public enum MergeError: Error, Sendable, Hashable {
        /// Different `unit`s.
        case unitMismatch
        /// A scheme other than `.logLinear`, or a precision above 16 bits.
        case unsupportedScheme
    }

    /// Records one observation (`value` in `unit`).
    public mutating func record(_ value: UInt64) {
        let index = LogLinearBuckets.index(of: value, precisionBits: precisionBits)
        if counts.isEmpty {
            firstBucket = UInt32(index)
            counts = [1]
        } else if index < Int(firstBucket) {
            counts.insert(contentsOf: repeatElement(0, count: Int(firstBucket) - index), at: 0)
            counts[0] = 1
            firstBucket = UInt32(index)
        } else {
            let offset = index - Int(firstBucket)
            if offset >= counts.count { counts.append(contentsOf: repeatElement(0, count: offset - counts.count + 1)) }
            counts[offset] &+= 1
        }
        min = count == 0 ? value : Swift.min(min, value)
        max = count == 0 ? value : Swift.max(max, value)
        count &+= 1
        sum &+= value
    }

    /// Adds `other`'s observations to this histogram, exactly.
    ///
    /// With equal precision the counts add bucket by bucket; otherwise the finer histogram
    /// folds into the coarser precision first (every fine bucket lies in one coarse bucket).
    /// - Throws: `MergeError` when the units differ or a scheme is not `.logLinear`.
    public mutating func merge(_ other: Self) throws(MergeError) {
        guard unit == other.unit else { throw .unitMismatch }
        guard scheme == .logLinear, other.scheme == .logLinear,
            precisionBits <= LogLinearBuckets.maxPrecisionBits, other.precisionBits <= LogLinearBuckets.maxPrecisionBits
        else { throw .unsupportedScheme }
        let p = Swift.min(precisionBits, other.precisionBits)
        var dense: [Int: UInt64] = [:]
        for source in [self, other] {
            for (offset, n) in source.counts.enumerated() where n > 0 {
                let lower = LogLinearBuckets.lowerBound(ofBucket: Int(source.firstBucket) + offset, precisionBits: source.precisionBits)
                dense[LogLinearBuckets.index(of: lower, precisionBits: p), default: 0] &+= n
            }
        }
        let mergedMin: UInt64 =
            count == 0 ? other.min : other.count == 0 ? min : Swift.min(min, other.min)
        let mergedMax: UInt64 =
            count == 0 ? other.max : other.count == 0 ? max : Swift.max(max, other.max)
        precisionBits = p
        if let low = dense.keys.min(), let high = dense.keys.max() {
            firstBucket = UInt32(low)
            counts = (low...high).map { dense[$0] ?? 0 }
        } else {
            firstBucket = 0
            counts = []
        }
        count &+= other.count
        sum &+= other.sum
        min = mergedMin
        max = mergedMax
    }
}
