public import Foundation

/// RFC 3339 with milliseconds (`2026-01-02T03:04:05.678Z`), as every timestamp of the
/// HTTP API and the JSON documents is written.
public func rfc3339(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

/// Milliseconds since 1970 in the same form; nil for 0 or less (unset).
public func rfc3339(unixMs: Int64) -> String? {
    unixMs > 0 ? rfc3339(Date(timeIntervalSince1970: Double(unixMs) / 1000)) : nil
}

/// An RFC 3339 time, with or without fractional seconds; nil when `text` is not one (or
/// longer than 64 bytes).
public func parseRFC3339(_ text: String) -> Date? {
    guard text.utf8.count <= 64 else { return nil }
    return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
}
