import Foundation

/// Text conversion of `timestamptz` values in PostgreSQL's ISO style, without
/// `DateFormatter` (thread-safe, allocation-light). Dates are rounded to microseconds,
/// PostgreSQL's precision.
enum Timestamp {
    /// `YYYY-MM-DD HH:MM:SS.ffffff+00`, or nil outside years 1…9999.
    static func format(_ date: Date) -> String? {
        var bytes: [UInt8] = []
        guard append(date, to: &bytes) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends ``format(_:)``'s text to `bytes` (no allocation of its own: the batch writer
    /// formats thousands of them per statement).
    /// - Returns: false, appending nothing, outside years 1…9999.
    static func append(_ date: Date, to bytes: inout [UInt8]) -> Bool {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        guard micros.isFinite, abs(micros) < 9.0e15 * 30 else { return false }
        let total = Int64(micros)
        let microsPerDay: Int64 = 86_400_000_000
        var days = total / microsPerDay
        var rest = total % microsPerDay
        if rest < 0 { rest += microsPerDay; days -= 1 }
        let (year, month, day) = civil(fromDays: days)
        guard (1...9999).contains(year) else { return false }
        let seconds = rest / 1_000_000
        func digits(_ value: Int64, _ width: Int) {
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                bytes.append(0x30 + UInt8(value / divisor % 10))
                divisor /= 10
            }
        }
        digits(year, 4); bytes.append(0x2d); digits(month, 2); bytes.append(0x2d); digits(day, 2); bytes.append(0x20)
        digits(seconds / 3600, 2); bytes.append(0x3a); digits(seconds / 60 % 60, 2); bytes.append(0x3a); digits(seconds % 60, 2)
        bytes.append(0x2e); digits(rest % 1_000_000, 6); bytes.append(0x2b); digits(0, 2)
        return true
    }

    /// Parses ISO output: `YYYY-MM-DD[ HH:MM:SS[.f…]][±HH[:MM[:SS]]]`, `infinity`,
    /// `-infinity`. Without an offset the value is taken as UTC (`timestamp`, `date`).
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Date? {
        if bytes.elementsEqual("infinity".utf8) { return .distantFuture }
        if bytes.elementsEqual("-infinity".utf8) { return .distantPast }
        var index = 0
        func number(_ width: Int) -> Int64? {
            guard index + width <= bytes.count else { return nil }
            var value: Int64 = 0
            for _ in 0..<width {
                let byte = bytes[index]
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int64(byte - 0x30)
                index += 1
            }
            return value
        }
        func expect(_ character: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == character else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect(0x2D), let month = number(2), expect(0x2D), let day = number(2) else { return nil }
        var micros: Int64 = 0
        if index < bytes.count && (bytes[index] == 0x20 || bytes[index] == 0x54) {
            index += 1
            guard let hour = number(2), expect(0x3A), let minute = number(2), expect(0x3A), let second = number(2) else {
                return nil
            }
            micros = ((hour * 60 + minute) * 60 + second) * 1_000_000
            if expect(0x2E) {
                var scale: Int64 = 100_000
                var digits = 0
                while index < bytes.count, bytes[index] >= 0x30 && bytes[index] <= 0x39 {
                    if scale > 0 { micros += Int64(bytes[index] - 0x30) * scale; scale /= 10 }
                    index += 1
                    digits += 1
                }
                guard digits > 0 else { return nil }
            }
        }
        if index < bytes.count, bytes[index] == 0x2B || bytes[index] == 0x2D {
            let sign: Int64 = bytes[index] == 0x2B ? 1 : -1
            index += 1
            guard let hours = number(2) else { return nil }
            var offset = hours * 3600
            if expect(0x3A) {
                guard let minutes = number(2) else { return nil }
                offset += minutes * 60
                if expect(0x3A) {
                    guard let seconds = number(2) else { return nil }
                    offset += seconds
                }
            }
            micros -= sign * offset * 1_000_000
        }
        guard index == bytes.count, (1...12).contains(month), (1...31).contains(day) else { return nil }
        let total = days(fromCivil: year, month, day) * 86_400_000_000 + micros
        return Date(timeIntervalSince1970: Double(total) / 1_000_000)
    }

    /// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
    /// (H. Hinnant's `civil_from_days`).
    static func civil(fromDays z: Int64) -> (Int64, Int64, Int64) {
        let z = z + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// (year, month, day) → days since 1970-01-01 (`days_from_civil`).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
