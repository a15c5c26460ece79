import MeshBench
import MeshCore
import Testing

@Suite struct LoadProfileTests {
    @Test(arguments: [
        ("max", LoadProfile.max(inFlight: 256)), ("max:16", .max(inFlight: 16)), ("constant:5000", .constant(rate: 5_000)),
        ("ramp:0,1000", .ramp(from: 0, to: 1_000)), ("step:100,50,2s", .step(from: 100, by: 50, every: 2)),
        ("spike:1000,8000,10s,5s", .spike(baseline: 1_000, burst: 8_000, at: 10, length: 5)), ("constant:0.5", .constant(rate: 0.5)),
    ])
    func parsesAndPrintsBack(text: String, expected: LoadProfile) throws {
        let profile = try LoadProfile(parsing: text)
        #expect(profile == expected)
        #expect(try LoadProfile(parsing: profile.description) == profile)
    }

    @Test(arguments: [
        "", "fast", "constant", "constant:0", "constant:-5", "constant:abc", "constant:1e12", "max:0", "max:x", "ramp:0,0", "ramp:5",
        "step:100,50", "step:100,50,0s", "spike:1,2,3s", "spike:1,2,-1s,5s", "constant:1,2", "constant:nan",
    ])
    func rejectsBadProfiles(text: String) {
        #expect(throws: MeshError.self) { try LoadProfile(parsing: text) }
    }

    @Test func targetRatesFollowTheShape() {
        #expect(LoadProfile.max(inFlight: 8).targetRate(at: 3, duration: 10) == nil)
        #expect(LoadProfile.constant(rate: 700).targetRate(at: 9.9, duration: 10) == 700)
        let ramp = LoadProfile.ramp(from: 100, to: 1_100)
        #expect(ramp.targetRate(at: -2, duration: 10) == 100)  // warm-up runs at the start rate
        #expect(ramp.targetRate(at: 5, duration: 10) == 600)
        #expect(ramp.targetRate(at: 10, duration: 10) == 1_100 && ramp.targetRate(at: 15, duration: 10) == 1_100)
        let step = LoadProfile.step(from: 100, by: 100, every: 2)
        #expect([0, 1.99, 2, 5, 6].map { step.targetRate(at: $0, duration: 10) } == [100, 100, 200, 300, 400])
        #expect(LoadProfile.step(from: 100, by: -60, every: 1).targetRate(at: 3, duration: 10) == 0)
        let spike = LoadProfile.spike(baseline: 10, burst: 90, at: 4, length: 2)
        #expect([3.99, 4, 5.99, 6].map { spike.targetRate(at: $0, duration: 10) } == [10, 90, 90, 10])
        #expect(spike.peakRate(duration: 10) == 90 && step.peakRate(duration: 10) == 600)
    }

    @Test func theScheduleSendsTheIntegralOfTheRate() {
        #expect(LoadProfile.max(inFlight: 1).plannedOperations(duration: 5) == nil)
        #expect(LoadProfile.constant(rate: 1_000).plannedOperations(duration: 2) == 2_000)
        // 0 → 1000/s over 10 s: 5 000 sends; the first waits until the rate has produced one.
        let ramp = LoadProfile.ramp(from: 0, to: 1_000)
        #expect(ramp.plannedOperations(duration: 10) == 5_000)
        let first = ramp.sendTime(ofCount: 1, duration: 10) ?? 0
        #expect(abs(first - (0.02).squareRoot()) < 1e-6, "\(first)")  // 1000 t² / 20 = 1
        // 100/s for 8 s plus 1 000/s for 2 s.
        #expect(LoadProfile.spike(baseline: 100, burst: 1_000, at: 4, length: 2).plannedOperations(duration: 10) == 2_800)
        #expect(LoadProfile.step(from: 100, by: 100, every: 1).plannedOperations(duration: 3) == 600)
        // A falling step stops at zero and never goes negative.
        let falling = LoadProfile.step(from: 100, by: -60, every: 1)
        #expect(falling.plannedOperations(duration: 5) == 140)
        #expect(falling.sendTime(ofCount: 141, duration: 5) == .infinity)
        // Send times come from each operation's index: evenly spaced, no drift.
        let constant = LoadProfile.constant(rate: 4)
        #expect(constant.nextSendTime(after: 0, duration: 1) == 0.25)
        #expect(constant.nextSendTime(after: -1, duration: 1) == -0.75)
        let spike = LoadProfile.spike(baseline: 10, burst: 90, at: 4, length: 2)
        for k in [1.0, 39, 40, 41, 219, 220, 221] {
            let t = spike.sendTime(ofCount: k, duration: 10) ?? 0
            #expect(abs((spike.cumulativeOperations(at: t, duration: 10) ?? 0) - k) < 1e-6, "\(k) → \(t)")
        }
        // Warm-up runs at the rate of t = 0.
        #expect(spike.sendTime(ofCount: -5, duration: 10) == -0.5)
        #expect(spike.cumulativeOperations(at: -2, duration: 10) == -20)
    }
}
