public import Foundation
import Synchronization

/// Time-ordered unique ids (UUID version 7, RFC 9562): 48 bits of Unix milliseconds, then
/// random bits, so ids sort by creation time and never collide in practice. Used for
/// events, tasks and request ids.
///
/// ```swift
/// let id = TimeOrderedID.make()   // "0190f3b2-7c1a-7def-8a1e-3b9c0d2f4e61"
/// ```
public enum TimeOrderedID {
    /// A new id in the canonical lowercase 8-4-4-4-12 form.
    ///
    /// The random bits come from a fast generator seeded once per process from the system
    /// generator (no system call per id: ids are made per request on hot paths). They make
    /// ids unique, not secret: never use one as a credential.
    public static func make(now: Date = Date()) -> String {
        var generator = FastRandom()
        return make(unixMilliseconds: UInt64(max(0, now.timeIntervalSince1970 * 1000)), using: &generator)
    }

    /// A new id for the given time, with randomness from `generator` (tests pass a seeded one).
    public static func make(unixMilliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> String {
        let random = (generator.next() as UInt64, generator.next() as UInt64)
        // 48 bits of time, version 7, 12 random bits | RFC 9562 variant, 62 random bits.
        let high = (unixMilliseconds & 0xFFFF_FFFF_FFFF) << 16 | 0x7000 | (random.0 & 0x0FFF)
        let low = 0x8000_0000_0000_0000 | (random.1 & 0x3FFF_FFFF_FFFF_FFFF)
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var offset = 0
            for index in 0..<16 {
                if index == 4 || index == 6 || index == 8 || index == 10 {
                    buffer[offset] = UInt8(ascii: "-")
                    offset += 1
                }
                let word = index < 8 ? high : low
                let byte = UInt8(truncatingIfNeeded: word >> UInt64(56 - 8 * (index % 8)))
                buffer[offset] = hexDigit(byte >> 4)
                buffer[offset + 1] = hexDigit(byte & 0x0F)
                offset += 2
            }
            return offset
        }
    }

    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10 }

    /// SplitMix64 over one atomic counter: lock-free, thread-safe, seeded at first use.
    private struct FastRandom: RandomNumberGenerator {
        static let state = Atomic<UInt64>(UInt64.random(in: .min ... .max))

        mutating func next() -> UInt64 {
            var z = Self.state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
            z = (z ^ (z >> 30)) &* 0xBF58_476C_E5B9_E2D9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The creation time encoded in an id made by ``make(now:)``, or nil if `id` is not a version 7 UUID.
    public static func unixMilliseconds(of id: String) -> UInt64? {
        let hex = id.replacingOccurrences(of: "-", with: "")
        guard hex.count == 32, id.count == 36, hex[hex.index(hex.startIndex, offsetBy: 12)] == "7" else { return nil }
        return UInt64(hex.prefix(12), radix: 16)
    }
}
