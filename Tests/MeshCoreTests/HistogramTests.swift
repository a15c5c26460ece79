import Testing
@testable import MeshCore

@Suite struct LogLinearHistogramTests {
    @Test func bucketIndexMatchesTheWireScheme() {
        // p = 3: values < 8 exact; 8..15 width 1; 16..31 width 2; index = (e - p + 1) * 8 + m.
        #expect(LogLinearHistogram.bucketIndex(7, precisionBits: 3) == 7)
        #expect(LogLinearHistogram.bucketIndex(8, precisionBits: 3) == 8)
        #expect(LogLinearHistogram.bucketIndex(15, precisionBits: 3) == 15)
        #expect(LogLinearHistogram.bucketIndex(16, precisionBits: 3) == 16)
        #expect(LogLinearHistogram.bucketIndex(17, precisionBits: 3) == 16)
        #expect(LogLinearHistogram.bucketIndex(18, precisionBits: 3) == 17)
        #expect(LogLinearHistogram.bucketIndex(UInt64.max, precisionBits: 3) == (65 - 3) * 8 - 1)
    }

    @Test(arguments: [0, 3, 5, 16])
    func boundsContainTheirValues(_ p: Int) {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let value = UInt64.random(in: 0...UInt64.max >> UInt64.random(in: 0...63, using: &generator), using: &generator)
            let index = LogLinearHistogram.bucketIndex(value, precisionBits: p)
            #expect(LogLinearHistogram.lowerBound(ofBucket: index, precisionBits: p) <= value)
            #expect(LogLinearHistogram.upperBound(ofBucket: index, precisionBits: p) >= value)
        }
        // Buckets are contiguous: the next bucket starts one past this one's upper bound.
        for index in 0..<min(2_000, (65 - p) << p - 1) {
            let upper = LogLinearHistogram.upperBound(ofBucket: index, precisionBits: p)
            #expect(LogLinearHistogram.lowerBound(ofBucket: index + 1, precisionBits: p) == upper + 1)
        }
    }

    @Test func percentilesAreWithinOneBucket() {
        var histogram = LogLinearHistogram(precisionBits: 5)
        for value in 1...100_000 { histogram.record(UInt64(value)) }
        #expect(histogram.count == 100_000)
        #expect(histogram.min == 1)
        #expect(histogram.max == 100_000)
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let estimate = Double(histogram.percentile(q))
            #expect(estimate >= exact)
            #expect(estimate <= exact * (1 + 1.0 / 32) + 1)
        }
        #expect(histogram.percentile(1) == 100_000)
        #expect(histogram.percentile(0) == 1)
        #expect(LogLinearHistogram().percentile(0.99) == 0)
    }

    @Test func mergeEqualsRecordingEverythingInOne() {
        var a = LogLinearHistogram()
        var b = LogLinearHistogram()
        var all = LogLinearHistogram()
        for value in stride(from: UInt64(1), to: 1_000_000, by: 997) {
            if value % 3 == 0 { a.record(value) } else { b.record(value) }
            all.record(value)
        }
        let merged = a.merged(with: b)
        #expect(merged == all)
        #expect(merged.percentile(0.99) == all.percentile(0.99))
    }

    @Test func mergeAcrossPrecisionsFoldsIntoTheCoarser() {
        var fine = LogLinearHistogram(precisionBits: 7)
        var coarse = LogLinearHistogram(precisionBits: 3)
        var expected = LogLinearHistogram(precisionBits: 3)
        for value in stride(from: UInt64(0), to: 50_000, by: 37) {
            fine.record(value)
            expected.record(value)
        }
        coarse.record(12_345)
        expected.record(12_345)
        let merged = fine.merged(with: coarse)
        #expect(merged.precisionBits == 3)
        #expect(merged == expected)
    }

    @Test func wireFormRoundTrips() throws {
        var histogram = LogLinearHistogram()
        for value: UInt64 in [900, 1_000, 1_000_000, 5] { histogram.record(value) }
        let sparse = histogram.sparseCounts
        let rebuilt = try LogLinearHistogram(
            precisionBits: histogram.precisionBits, firstBucket: sparse.firstBucket, counts: Array(sparse.counts),
            sum: histogram.sum, min: histogram.min, max: histogram.max)
        #expect(rebuilt == histogram)
        #expect(throws: MeshError.self) {
            try LogLinearHistogram(precisionBits: 5, firstBucket: 10_000, counts: [1], sum: 0, min: 0, max: 0)
        }
        #expect(throws: MeshError.self) { try LogLinearHistogram(precisionBits: 17, firstBucket: 0, counts: [], sum: 0, min: 0, max: 0) }
    }
}
