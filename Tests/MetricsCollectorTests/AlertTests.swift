import MeshCore
import MeshProto
@testable import MetricsCollectorService
import Testing

@Suite struct AlertStateMachineTests {
    @Test func forDurationFiresOnlyAfterHoldingLongEnough() {
        var alert = AlertStateMachine()
        #expect(alert.step(holds: false, value: 1, now: 0, forMs: 5000) == nil)
        #expect(alert.step(holds: true, value: 9, now: 1000, forMs: 5000) == .pending)
        #expect(alert.step(holds: true, value: 9, now: 5999, forMs: 5000) == nil)
        #expect(alert.phase == .pending)
        #expect(alert.step(holds: true, value: 9, now: 6000, forMs: 5000) == .fired)
        #expect(alert.phase == .firing)
        #expect(alert.activeSinceUnixMs == 1000)
        #expect(alert.firedAtUnixMs == 6000)
        #expect(alert.step(holds: true, value: 9, now: 7000, forMs: 5000) == nil)
        #expect(alert.step(holds: false, value: 1, now: 8000, forMs: 5000) == .resolved)
        #expect(alert.phase == .inactive)
        #expect(alert.firedAtUnixMs == nil)
    }

    @Test func pendingThatStopsHoldingNeverFires() {
        var alert = AlertStateMachine()
        #expect(alert.step(holds: true, value: 9, now: 0, forMs: 5000) == .pending)
        #expect(alert.step(holds: false, value: nil, now: 4000, forMs: 5000) == .cleared)
        // The for-duration starts over.
        #expect(alert.step(holds: true, value: 9, now: 5000, forMs: 5000) == .pending)
        #expect(alert.step(holds: true, value: 9, now: 9000, forMs: 5000) == nil)
        #expect(alert.step(holds: true, value: 9, now: 10_000, forMs: 5000) == .fired)
    }

    @Test func zeroDurationFiresAtOnce() {
        var alert = AlertStateMachine()
        #expect(alert.step(holds: true, value: 1, now: 0, forMs: 0) == .fired)
        #expect(alert.step(holds: false, value: 0, now: 1, forMs: 0) == .resolved)
    }
}

@Suite struct AlertBookTests {
    /// Frames of one worker whose actions fail at `errorsPerStep` of 10 per 1 s step.
    func frames(_ errorsPerStep: [UInt64]) throws -> [Frame] {
        var cluster = model()
        var ok: UInt64 = 0
        var failed: UInt64 = 0
        var result: [Frame] = []
        for (step, errors) in errorsPerStep.enumerated() {
            ok += 10 - errors
            failed += errors
            let now = Int64(step) * 1000
            let snap = Snap.make(
                "mesh-agent-worker", "w", at: now,
                counters: [("mesh_actions_total", ["outcome": "ok"], ok), ("mesh_actions_total", ["outcome": "error"], failed)])
            try cluster.ingest(snap.0, subject: snap.1, prefix: "mesh", now: now)
            result.append(cluster.takeFrame(now: now))
        }
        return result
    }

    @Test func errorRateRuleFiresAfterItsDurationAndResolves() throws {
        let rule = AlertRule(
            name: "errors", severity: .critical, summary: "errors",
            expression: .ratio(
                .rate(Selector(metric: "mesh_actions_total", labels: ["outcome": "error"])), .rate(Selector(metric: "mesh_actions_total"))),
            scale: 100, grouping: .cluster, comparison: .greater, threshold: 5, forMs: 2000, windowMs: 1000)
        var book = AlertBook(rules: [rule])
        // Steps 0-1 healthy, 2-5 at 50 % errors, 6-7 healthy again.
        let all = try frames([0, 0, 5, 5, 5, 5, 0, 0])
        var log: [(Int, AlertStateMachine.Transition)] = []
        for end in 1...all.count {
            for notice in book.evaluate(frames: Array(all[..<end])) { log.append((end - 1, notice.transition)) }
            if end == 4 { #expect(book.list(includeResolved: false).first?.state == "pending") }
        }
        // Holds from step 2 (pending), fires once 2 s have passed (step 4), resolves at step 6.
        #expect(log.map(\.0) == [4, 6])
        #expect(log.map(\.1) == [.fired, .resolved])
        #expect(book.list(includeResolved: false).isEmpty)
        let resolved = try #require(book.list(includeResolved: true).first)
        #expect(resolved.state == "resolved")
        #expect(resolved.rule == "errors")
        #expect(resolved.firedAtUnixMs == 4000)
        #expect(resolved.resolvedAtUnixMs == 6000)
    }

    @Test func perInstanceGroupsAndDisappearingGroupsResolve() throws {
        let rule = AlertRule(
            name: "node_down", severity: .critical, summary: "down",
            expression: .gauge(Selector(metric: ClusterMetrics.instanceUpMetric)), grouping: .instance, comparison: .less,
            threshold: 1, forMs: 0)
        var book = AlertBook(rules: [rule])
        var cluster = model(stale: 1500, forget: 5000)
        for name in ["a", "b"] {
            let snap = Snap.make("mesh-agent-worker", name, at: 0)
            try cluster.ingest(snap.0, subject: snap.1, prefix: "mesh", now: 0)
        }
        #expect(book.evaluate(frames: [cluster.takeFrame(now: 0)]).isEmpty)
        let keepA = Snap.make("mesh-agent-worker", "a", at: 2000)
        try cluster.ingest(keepA.0, subject: keepA.1, prefix: "mesh", now: 2000)
        let fired = book.evaluate(frames: [cluster.takeFrame(now: 2000)])
        #expect(fired.count == 1)
        #expect(fired.first?.status.labels == ["service": "mesh-agent-worker", "instance": "b"])
        #expect(book.firingCount == 1)
        // b is forgotten: its group has no value any more, so the alert resolves.
        let keepA2 = Snap.make("mesh-agent-worker", "a", at: 6000)
        try cluster.ingest(keepA2.0, subject: keepA2.1, prefix: "mesh", now: 6000)
        cluster.forget(now: 6000)
        let resolved = book.evaluate(frames: [cluster.takeFrame(now: 6000)])
        #expect(resolved.map(\.transition) == [.resolved])
    }

    @Test func quantileRuleUsesTheWindowOnly() throws {
        let rule = AlertRule(
            name: "slow", severity: .warning, summary: "slow", expression: .quantile(Selector(metric: "mesh_action_duration"), 0.99),
            grouping: .cluster, comparison: .greater, threshold: 5_000_000, forMs: 0, windowMs: 1000)
        var book = AlertBook(rules: [rule])
        var cluster = model()
        var values: [UInt64] = Array(repeating: 10_000_000, count: 100)  // an old slow spell
        var snap = Snap.make("mesh-agent-worker", "w", at: 0, histograms: [Snap.histogram("mesh_action_duration", values)])
        try cluster.ingest(snap.0, subject: snap.1, prefix: "mesh", now: 0)
        var frames = [cluster.takeFrame(now: 0)]
        values += Array(repeating: 100_000, count: 100)  // fast in the last second
        snap = Snap.make("mesh-agent-worker", "w", at: 1000, histograms: [Snap.histogram("mesh_action_duration", values)])
        try cluster.ingest(snap.0, subject: snap.1, prefix: "mesh", now: 1000)
        frames.append(cluster.takeFrame(now: 1000))
        // Cumulatively the p99 is 10 ms; over the window it is 100 µs: no alert.
        #expect(book.evaluate(frames: frames).isEmpty)
    }
}

@Suite struct AlertRuleParsingTests {
    @Test func defaultsCoverTheIssuesRules() {
        let names = Set(AlertRuleSet.defaults.map(\.name))
        #expect(names == ["action_latency_p99", "error_rate", "cpu_high", "memory_high", "task_consumer_at_max_ack_pending", "node_down"])
        let latency = AlertRuleSet.defaults.first { $0.name == "action_latency_p99" }
        #expect(latency?.threshold == 5_000_000)
        #expect(latency?.forMs == 300_000)
        #expect(AlertRuleSet.defaults.first { $0.name == "memory_high" }?.forMs == 30_000)
    }

    @Test func parsesAFileAndReplacesADefault() throws {
        let yaml = """
            rules:
              - name: cpu_high
                severity: warning
                summary: CPU above half a core
                expr: {type: rate, metric: mesh_process_cpu_seconds, service: mesh-agent-worker}
                scale: 100
                by: instance
                op: ">"
                threshold: 50
                for: 30s
                window: 10s
              - name: task_failures
                expr:
                  type: ratio
                  numerator: {type: rate, metric: mesh_tasks_total, labels: {outcome: failed}}
                  denominator: {type: rate, metric: mesh_tasks_total}
                threshold: 0.1
                for: 1m
            """
        let rules = try AlertRuleSet.parse(yaml)
        #expect(rules.count == AlertRuleSet.defaults.count + 1)
        let cpu = try #require(rules.first { $0.name == "cpu_high" })
        #expect(cpu.severity == .warning)
        #expect(cpu.threshold == 50)
        #expect(cpu.forMs == 30_000)
        #expect(cpu.windowMs == 10_000)
        #expect(cpu.grouping == .instance)
        #expect(cpu.expression == .rate(Selector(metric: "mesh_process_cpu_seconds", service: "mesh-agent-worker")))
        let failures = try #require(rules.first { $0.name == "task_failures" })
        #expect(failures.comparison == .greater)
        #expect(failures.severity == .warning)
        let withoutDefaults = try AlertRuleSet.parse("defaults: false\nrules:\n  - {name: x, expr: {type: gauge, metric: g}, threshold: 1}\n")
        #expect(withoutDefaults.map(\.name) == ["x"])
    }

    @Test func badInputIsRefusedWithTheRuleNamed() {
        let cases: [(String, String)] = [
            ("rules: [", "not valid YAML"),
            ("- a\n- b\n", "expected a mapping"),
            ("rules: {a: 1}", "must be a list"),
            ("rules:\n  - {name: Bad Name, expr: {type: gauge, metric: g}, threshold: 1}", "`name`"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g}}", "`threshold` is required"),
            ("rules:\n  - {name: a, expr: {type: median, metric: g}, threshold: 1}", "expr.type"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: '1bad'}, threshold: 1}", "expr.metric"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g}, threshold: 1, for: 5 minutes}", "`for`"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g}, threshold: 1, for: 2d}", "`for`"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g}, threshold: 1, op: '=='}", "`op`"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g}, threshold: 1, colour: red}", "unknown key `colour`"),
            ("rules:\n  - {name: a, expr: {type: quantile, metric: g, quantile: 2}, threshold: 1}", "quantile"),
            ("rules:\n  - {name: a, expr: {type: ratio, numerator: {type: gauge, metric: g}}, threshold: 1}", "denominator"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g}, threshold: .nan}", "finite"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g, labels: {'bad-label': x}}, threshold: 1}", "expr.labels"),
            ("rules:\n  - {name: a, expr: {type: gauge, metric: g}, threshold: 1}\n  - {name: a, expr: {type: gauge, metric: g}, threshold: 2}", "duplicate"),
        ]
        for (yaml, expected) in cases {
            do {
                _ = try AlertRuleSet.parse(yaml, source: "test.yml")
                Issue.record("accepted: \(yaml)")
            } catch {
                #expect(error.code == .invalidArgument, "\(yaml)")
                #expect(error.message.contains(expected), "\(error.message) lacks \(expected)")
            }
        }
    }

    @Test func durations() {
        #expect(AlertRuleSet.parseDuration("500ms") == 500)
        #expect(AlertRuleSet.parseDuration("30s") == 30_000)
        #expect(AlertRuleSet.parseDuration("5m") == 300_000)
        #expect(AlertRuleSet.parseDuration("1h") == 3_600_000)
        #expect(AlertRuleSet.parseDuration("0") == 0)
        #expect(AlertRuleSet.parseDuration("-1s") == nil)
        #expect(AlertRuleSet.parseDuration("25h") == nil)
        #expect(AlertRuleSet.parseDuration("soon") == nil)
    }
}
