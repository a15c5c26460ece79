import MeshCore
import Testing
@testable import MeshSupervision

@Suite struct SupervisionGroupTests {
    let a = agent("a"), b = agent("b"), c = agent("c"), d = agent("d")

    func group(
        _ strategy: SupervisionStrategy = .oneForOne, max: Int = 3, period: Duration = .seconds(5),
        backoff: RestartBackoff = .standard, _ children: [ChildSpec]? = nil
    ) throws -> SupervisionGroup {
        try SupervisionGroup(
            policy: SupervisionPolicy(strategy: strategy, intensity: RestartIntensity(maxRestarts: max, period: period), backoff: backoff),
            children: children ?? [ChildSpec(a), ChildSpec(b), ChildSpec(c)])
    }

    @Test func restartsAreAllowedUpToIntensityThenTheNextEscalates() throws {
        var group = try group()
        var rng = SeededGenerator(seed: 1)
        for second in 0..<3 {
            let decision = group.childExited(b, reason: .failure("boom"), at: at(.seconds(second)), using: &rng)
            #expect(decision.action == .restart)
            #expect(decision.start == [b])
            #expect(decision.stop.isEmpty)
            #expect(decision.reason.contains("restart \(second + 1) of 3 restarts in 5 s"))
        }
        let fourth = group.childExited(b, reason: .failure("boom"), at: at(.seconds(3)), using: &rng)
        #expect(fourth.action == .groupFailed)
        #expect(fourth.stop == [c, a])  // the others, in reverse start order
        #expect(fourth.start.isEmpty)
        #expect(fourth.reason.contains("intensity (3 restarts in 5 s) exceeded"))
        #expect(group.isFailed)
        #expect(group.failureReason == fourth.reason)
    }

    @Test func zeroIntensityEscalatesOnTheFirstFailure() throws {
        var group = try group(max: 0)
        var rng = SeededGenerator(seed: 1)
        #expect(group.childExited(a, reason: .failure("x"), at: at(.zero), using: &rng).action == .groupFailed)
    }

    @Test func theWindowSlides() throws {
        var group = try group()
        var rng = SeededGenerator(seed: 2)
        for ms in [0, 1000, 2000] {
            #expect(group.childExited(a, reason: .failure("x"), at: at(.milliseconds(ms)), using: &rng).action == .restart)
        }
        // 5.5 s: the restart at 0 s has left the window; three remain after this one.
        #expect(group.childExited(a, reason: .failure("x"), at: at(ms(5500)), using: &rng).action == .restart)
        // 6.5 s: the one at 1 s has left too.
        #expect(group.childExited(a, reason: .failure("x"), at: at(ms(6500)), using: &rng).action == .restart)
        #expect(group.restarts == [at(ms(2000)), at(ms(5500)), at(ms(6500))])
        // 6.6 s: 2 s, 5.5 s and 6.5 s are all inside: the fourth escalates.
        #expect(group.childExited(a, reason: .failure("x"), at: at(ms(6600)), using: &rng).action == .groupFailed)
    }

    @Test func aRestartExactlyOnePeriodOldStillCountsAsInOTP() throws {
        var group = try group()
        var rng = SeededGenerator(seed: 3)
        for second in 0..<3 { _ = group.childExited(a, reason: .failure("x"), at: at(.seconds(second)), using: &rng) }
        #expect(group.childExited(a, reason: .failure("x"), at: at(.seconds(5)), using: &rng).action == .groupFailed)
    }

    @Test func transientIsRestartedOnlyAfterAnAbnormalExit() throws {
        var group = try group(.oneForOne, [ChildSpec(a, restart: .transient), ChildSpec(b, restart: .transient), ChildSpec(c)])
        var rng = SeededGenerator(seed: 4)
        let failed = group.childExited(a, reason: .failure("crash"), at: at(.zero), using: &rng)
        #expect(failed.action == .restart && failed.start == [a])
        let normal = group.childExited(a, reason: .normal, at: at(.seconds(1)), using: &rng)
        #expect(normal.action == .remove && normal.remove == [a] && normal.start.isEmpty)
        let shutdown = group.childExited(b, reason: .shutdown, at: at(.seconds(1)), using: &rng)
        #expect(shutdown.action == .remove && shutdown.remove == [b])
        #expect(group.children.map(\.id) == [c])
        #expect(group.restarts.count == 1)  // non-restarts do not count towards intensity
    }

    @Test func permanentIsRestartedEvenAfterANormalExit() throws {
        var group = try group()
        var rng = SeededGenerator(seed: 5)
        for reason in [ExitReason.normal, .shutdown] {
            let decision = group.childExited(a, reason: reason, at: at(.zero), using: &rng)
            #expect(decision.action == .restart && decision.start == [a])
        }
    }

    @Test(arguments: [ExitReason.normal, .shutdown, .failure("bad")])
    func temporaryIsNeverRestarted(_ reason: ExitReason) throws {
        var group = try group(.oneForAll, [ChildSpec(a), ChildSpec(b, restart: .temporary)])
        var rng = SeededGenerator(seed: 6)
        let decision = group.childExited(b, reason: reason, at: at(.zero), using: &rng)
        #expect(decision.action == .remove && decision.remove == [b] && decision.start.isEmpty && decision.stop.isEmpty)
        #expect(group.children.map(\.id) == [a])
        #expect(group.childExited(b, reason: reason, at: at(.seconds(1)), using: &rng).action == .none)
    }

    @Test func oneForAllRestartsAllAfterStoppingTheOthers() throws {
        var group = try group(.oneForAll)
        var rng = SeededGenerator(seed: 7)
        let decision = group.childExited(b, reason: .failure("x"), at: at(.zero), using: &rng)
        #expect(decision.action == .restart)
        #expect(decision.stop == [c, a])
        #expect(decision.start == [a, b, c])
    }

    @Test func restForOneRestartsTheFailedChildAndOnlyLaterSiblings() throws {
        var group = try group(.restForOne, [ChildSpec(a), ChildSpec(b), ChildSpec(c), ChildSpec(d)])
        var rng = SeededGenerator(seed: 8)
        let middle = group.childExited(b, reason: .failure("x"), at: at(.zero), using: &rng)
        #expect(middle.stop == [d, c])
        #expect(middle.start == [b, c, d])
        let last = group.childExited(d, reason: .failure("x"), at: at(.seconds(1)), using: &rng)
        #expect(last.stop.isEmpty && last.start == [d])
        let first = group.childExited(a, reason: .failure("x"), at: at(.seconds(2)), using: &rng)
        #expect(first.stop == [d, c, b] && first.start == [a, b, c, d])
    }

    @Test func temporarySiblingsCaughtInAGroupRestartAreDropped() throws {
        var group = try group(.restForOne, [ChildSpec(a), ChildSpec(b), ChildSpec(c, restart: .temporary), ChildSpec(d)])
        var rng = SeededGenerator(seed: 9)
        let decision = group.childExited(b, reason: .failure("x"), at: at(.zero), using: &rng)
        #expect(decision.stop == [d, c])
        #expect(decision.remove == [c])
        #expect(decision.start == [b, d])
        #expect(group.children.map(\.id) == [a, b, d])
    }

    @Test func backoffGrowsWithRestartsInTheWindowIsCappedAndResets() throws {
        let backoff = try RestartBackoff(base: ms(100), multiplier: 2, cap: ms(1000), jitter: 0)
        #expect((1...7).map { backoff.nominalDelay(attempt: $0) } == [100, 200, 400, 800, 1000, 1000, 1000].map(ms))
        var group = try group(max: 10, period: .seconds(5), backoff: backoff)
        var rng = SeededGenerator(seed: 10)
        var delays: [Duration] = []
        for step in 0..<6 {
            delays.append(group.childExited(a, reason: .failure("x"), at: at(ms(step * 10)), using: &rng).delay)
        }
        #expect(delays == [100, 200, 400, 800, 1000, 1000].map(ms))
        // The window empties after 5 s: back to the base delay.
        #expect(group.childExited(a, reason: .failure("x"), at: at(.seconds(6)), using: &rng).delay == ms(100))
        #expect(group.childExited(a, reason: .failure("x"), at: at(ms(6010)), using: &rng).delay == ms(200))
    }

    @Test func jitterStaysWithinItsBoundsAndVaries() throws {
        let backoff = RestartBackoff.standard
        var rng = SeededGenerator(seed: 11)
        for attempt in 1...12 {
            let nominal = backoff.nominalDelay(attempt: attempt)
            #expect(nominal <= .seconds(10))
            var seen: Set<Duration> = []
            for _ in 0..<200 {
                let delay = backoff.delay(attempt: attempt, using: &rng)
                #expect(delay <= nominal)
                #expect(delay >= nominal * 0.8)
                seen.insert(delay)
            }
            #expect(seen.count > 100)
        }
        #expect(backoff.nominalDelay(attempt: 12) == .seconds(10))
        var low = ConstantGenerator(value: 0)
        #expect(backoff.delay(attempt: 2, using: &low) == ms(200))
        var high = ConstantGenerator(value: .max)
        let lowest = backoff.delay(attempt: 2, using: &high)
        #expect(lowest >= ms(160) && lowest < ms(161))
    }

    @Test func sameSeedSameDelays() throws {
        func run() throws -> [Duration] {
            var group = try group(max: 5)
            var rng = SeededGenerator(seed: 42)
            return (0..<5).map { group.childExited(b, reason: .failure("x"), at: at(ms($0)), using: &rng).delay }
        }
        #expect(try run() == run())
    }

    @Test func aFailedGroupIgnoresFurtherExits() throws {
        var group = try group(max: 1)
        var rng = SeededGenerator(seed: 12)
        _ = group.childExited(a, reason: .failure("x"), at: at(.zero), using: &rng)
        #expect(group.childExited(a, reason: .failure("x"), at: at(ms(1)), using: &rng).action == .groupFailed)
        for step in 2..<50 {
            let decision = group.childExited(step.isMultiple(of: 2) ? b : c, reason: .failure("x"), at: at(ms(step)), using: &rng)
            #expect(decision.action == .none)
            #expect(decision.reason.contains("ignored until reset"))
        }
        #expect(group.restarts.isEmpty)
        let added = group.handle(.added(ChildSpec(d)), at: at(ms(60)), using: &rng)
        #expect(added.action == .none && added.start.isEmpty)
    }

    @Test func resetStartsAFailedGroupWithAFreshWindow() throws {
        var group = try group(.oneForOne, max: 1, [ChildSpec(a), ChildSpec(b, restart: .temporary), ChildSpec(c)])
        var rng = SeededGenerator(seed: 13)
        _ = group.childExited(a, reason: .failure("x"), at: at(.zero), using: &rng)
        let failed = group.childExited(a, reason: .failure("x"), at: at(ms(1)), using: &rng)
        #expect(failed.action == .groupFailed && failed.stop == [c, b] && failed.remove == [b])
        let reset = group.handle(.reset, at: at(ms(2)), using: &rng)
        #expect(reset.action == .start && reset.start == [a, c])
        #expect(!group.isFailed && group.restarts.isEmpty)
        #expect(group.childExited(a, reason: .failure("x"), at: at(ms(3)), using: &rng).action == .restart)
        // Resetting a healthy group only clears the window.
        #expect(group.reset().action == .none)
        #expect(group.restarts.isEmpty)
    }

    @Test func addedAndRemovedChildren() throws {
        var group = try group()
        var rng = SeededGenerator(seed: 14)
        let added = group.handle(.added(ChildSpec(d, restart: .transient)), at: at(.zero), using: &rng)
        #expect(added.action == .start && added.start == [d])
        #expect(group.children.map(\.id) == [a, b, c, d])
        #expect(group.handle(.added(ChildSpec(d)), at: at(.zero), using: &rng).action == .none)
        #expect(group.handle(.removed(b), at: at(.zero), using: &rng).action == .none)
        #expect(group.children.map(\.id) == [a, c, d])
        #expect(group.handle(.exited(b, .failure("x")), at: at(.zero), using: &rng).action == .none)
        #expect(group.restarts.isEmpty)
        #expect(throws: MeshError.self) { try SupervisionGroup(children: [ChildSpec(a), ChildSpec(a)]) }
    }

    @Test func invalidPoliciesAreRejected() {
        #expect(throws: MeshError.self) { try RestartIntensity(maxRestarts: -1) }
        #expect(throws: MeshError.self) { try RestartIntensity(maxRestarts: 1, period: .zero) }
        #expect(throws: MeshError.self) { try RestartBackoff(base: .seconds(2), cap: .seconds(1)) }
        #expect(throws: MeshError.self) { try RestartBackoff(multiplier: 0.5) }
        #expect(throws: MeshError.self) { try RestartBackoff(jitter: 1.5) }
        #expect(throws: Never.self) { try RestartIntensity(maxRestarts: 3, periodSeconds: 5) }
    }
}
