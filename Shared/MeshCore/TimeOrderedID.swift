public import Foundation

/// Time-ordered unique ids (UUID version 7, RFC 9562): 48 bits of Unix milliseconds, then
/// random bits, so ids sort by creation time and never collide in practice. Used for
/// events, tasks and request ids.
///
/// ```swift
/// let id = TimeOrderedID.make()   // "0190f3b2-7c1a-7def-8a1e-3b9c0d2f4e61"
/// ```
public enum TimeOrderedID {
    /// A new id in the canonical lowercase 8-4-4-4-12 form.
    public static func make(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(unixMilliseconds: UInt64(max(0, now.timeIntervalSince1970 * 1000)), using: &generator)
    }

    /// A new id for the given time, with randomness from `generator` (tests pass a seeded one).
    public static func make(unixMilliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: unixMilliseconds >> UInt64(40 - 8 * index)) }
        let random = (generator.next() as UInt64, generator.next() as UInt64)
        for index in 6..<16 {
            let source = index < 14 ? random.0 : random.1
            bytes[index] = UInt8(truncatingIfNeeded: source >> UInt64(8 * (index % 8)))
        }
        bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // RFC 9562 variant
        let hex = bytes.map { byte -> String in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }
        return hex[0..<4].joined() + "-" + hex[4..<6].joined() + "-" + hex[6..<8].joined() + "-" + hex[8..<10].joined() + "-"
            + hex[10..<16].joined()
    }

    /// The creation time encoded in an id made by ``make(now:)``, or nil if `id` is not a version 7 UUID.
    public static func unixMilliseconds(of id: String) -> UInt64? {
        let hex = id.replacingOccurrences(of: "-", with: "")
        guard hex.count == 32, id.count == 36, hex[hex.index(hex.startIndex, offsetBy: 12)] == "7" else { return nil }
        return UInt64(hex.prefix(12), radix: 16)
    }
}
