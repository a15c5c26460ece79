extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64.min`/`.max`.
    public var totalNanoseconds: Int64 {
        let (scaled, overflow) = components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return components.seconds < 0 ? .min : .max }
        let (sum, sumOverflow) = scaled.addingReportingOverflow(components.attoseconds / 1_000_000_000)
        return sumOverflow ? (scaled < 0 ? .min : .max) : sum
    }

    /// The duration in whole milliseconds, saturating.
    public var totalMilliseconds: Int64 { totalNanoseconds / 1_000_000 }

    /// The duration in seconds as a `Double`.
    public var totalSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
