public import Foundation

/// RFC 3339 in UTC with milliseconds (`2026-01-02T03:04:05.678Z`), as every timestamp of
/// the HTTP API and the JSON documents is written (to the nearest millisecond).
///
/// Formatted by arithmetic, not by a date formatter: documents with several timestamps are
/// rendered on hot paths (an agent document has three), and Foundation's formatters cost
/// tens of microseconds each.
public func rfc3339(_ date: Date) -> String {
    formatRFC3339(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded()))
}

/// Milliseconds since 1970 in the same form; nil for 0 or less (unset).
public func rfc3339(unixMs: Int64) -> String? {
    unixMs > 0 ? formatRFC3339(milliseconds: unixMs) : nil
}

/// Years 0...9999 by the civil-from-days algorithm (proleptic Gregorian calendar); other
/// years through Foundation.
private func formatRFC3339(milliseconds: Int64) -> String {
    let msPerDay: Int64 = 86_400_000
    var days = milliseconds / msPerDay
    var ofDay = milliseconds % msPerDay
    if ofDay < 0 {
        days -= 1
        ofDay += msPerDay
    }
    let shifted = days + 719_468
    let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
    let dayOfEra = shifted - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    guard (0...9_999).contains(year) else {
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
    var bytes = [UInt8]()
    bytes.reserveCapacity(24)
    func digits(_ value: Int64, _ width: Int) {
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(48 + rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
    digits(year, 4); bytes.append(45)
    digits(month, 2); bytes.append(45)
    digits(day, 2); bytes.append(84)
    digits(ofDay / 3_600_000, 2); bytes.append(58)
    digits(ofDay / 60_000 % 60, 2); bytes.append(58)
    digits(ofDay / 1_000 % 60, 2); bytes.append(46)
    digits(ofDay % 1_000, 3); bytes.append(90)
    return String(decoding: bytes, as: UTF8.self)
}

/// An RFC 3339 time, with or without fractional seconds; nil when `text` is not one (or
/// longer than 64 bytes).
public func parseRFC3339(_ text: String) -> Date? {
    guard text.utf8.count <= 64 else { return nil }
    return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
}
