import MeshCore

/// A seeded generator (splitmix64), so jitter is reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// A generator that always returns the same word, to reach the ends of the jitter range.
struct ConstantGenerator: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

func agent(_ text: String) -> AgentID { try! AgentID(text) }
func node(_ text: String) -> NodeID { try! NodeID(text) }

/// An arbitrary origin for test time; every instant in a test is an offset from it.
let origin = ContinuousClock.now

func at(_ offset: Duration) -> ContinuousClock.Instant { origin + offset }
func ms(_ value: Int) -> Duration { .milliseconds(value) }
