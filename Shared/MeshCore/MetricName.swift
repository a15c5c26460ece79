/// Prometheus metric names (`[a-zA-Z_:][a-zA-Z0-9_:]*`): checked wherever a name arrives
/// from outside (snapshots, alert rules, queries) before it is stored or looked up.
public enum MetricName {
    /// Longest name a query or rule may use.
    public static let maxLength = 200

    /// Whether `name` is a metric name of at most `limit` bytes.
    public static func isValid(_ name: String, limit: Int = maxLength) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= limit else { return false }
        for (index, byte) in bytes.enumerated() {
            let letter = (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || byte == 0x3A
            let digit = byte >= 0x30 && byte <= 0x39
            guard letter || (digit && index > 0) else { return false }
        }
        return true
    }
}
