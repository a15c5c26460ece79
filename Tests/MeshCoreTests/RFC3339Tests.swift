import Foundation
import MeshCore
import Testing

@Suite("RFC 3339 timestamps")
struct RFC3339Tests {
    /// Foundation's rendering of the whole seconds (exact in a `Double`), then the
    /// milliseconds: Foundation's own fractional output truncates `ms / 1000` after the
    /// floating-point division (`.007` can come out `.006`).
    static func foundation(_ milliseconds: Int64) -> String {
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let whole = Date(timeIntervalSince1970: Double(seconds)).formatted(Date.ISO8601FormatStyle())
        let fraction = milliseconds - seconds * 1000
        return whole.dropLast() + "." + String(String(fraction + 1000).dropFirst()) + "Z"
    }

    @Test func matchesFoundationAcrossCalendarEdges() {
        let fixed: [Int64] = [
            0, 1, 999, 1_000, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999, 4_107_542_399_999, 1_767_225_599_999,
            -1, -86_400_000, -2_208_988_800_000, 253_402_300_799_999,  // (before 1582 Foundation is Julian; RFC 3339 is not)
        ]
        for value in fixed {
            let date = Date(timeIntervalSince1970: Double(value) / 1000)
            #expect(rfc3339(date) == Self.foundation(value), "\(value)")
        }
        var state: UInt64 = 42
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let value = Int64(state >> 20) % 253_402_300_799_999  // years 1970...9999
            #expect(rfc3339(unixMs: value) == (value > 0 ? Self.foundation(value) : nil), "\(value)")
        }
        #expect(rfc3339(unixMs: 1_767_225_600_123) == "2026-01-01T00:00:00.123Z")
        #expect(rfc3339(unixMs: 0) == nil)
    }

    @Test func parsesWhatItWrites() {
        let value: Int64 = 1_795_000_000_456
        let text = rfc3339(unixMs: value)!
        #expect(parseRFC3339(text).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } == value)
    }
}
