import MeshProto

/// Messages with every field set (unicode, extremes, maps, nested messages) and helpers
/// shared by the tests.
enum Samples {
    static let unicode = "naïve 日本語 🚀 Ωmega — ok"
    static let bigPayload: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    static let labels = ["team": "search", "tier": "gold", "emoji": "🚀", "": "empty key", "k": ""]

    static let error = ErrorReply(version: 1, code: "busy", message: "mailbox full: \(unicode)", retryAfterMs: .max)

    static let spec = AgentSpec(
        version: 1, id: "counter-1", kind: "counter", generation: .max, config: Array(#"{"start": 5, "name": "ünï"}"#.utf8),
        labels: labels, restartType: .transient, group: "group-a", groupStrategy: .restForOne, maxRestarts: 10,
        periodSeconds: 60, mailboxCapacity: 1024, actionTimeoutMs: .max, incarnation: .max - 1)

    static let placement = Placement(version: 1, nodeId: "node-ä", shard: 63, shardEpoch: 1 << 40)

    static let record = AgentRecord(
        version: 1, spec: spec, status: .restarting, placement: placement, revision: 99, restartCount: 3, lastError: error,
        createdAtUnixMs: 1_700_000_000_000, updatedAtUnixMs: -1, startedAtUnixMs: .min, statusChangedAtUnixMs: .max)

    static let request = ActionRequest(
        version: 1, requestId: "req-\(unicode)", agentId: "echo-1", action: "echo", payload: bigPayload,
        deadlineUnixMs: 1_700_000_002_000, shardEpoch: 7)

    static let reply = ActionReply(
        version: 1, requestId: "req-1", status: .error, payload: [0, 1, 2, 0, 255], error: error, servedBy: "node-a",
        shardEpoch: .max)

    static let task = TaskEnvelope(
        version: 1, taskId: "t-1", agentId: "work-1", action: "run", payload: Array(unicode.utf8), priority: .low,
        deadlineUnixMs: .max, attempt: 2, maxAttempts: 5, idempotencyKey: "order-42-✓", submittedAtUnixMs: 1, rerun: 3)

    static let taskRecord = TaskRecord(
        version: 1, taskId: "t-1", agentId: "work-1", action: "run", priority: .high, state: .deadLettered, attempts: 5,
        maxAttempts: 5, idempotencyKey: "order-42-✓", submittedAtUnixMs: 1, startedAtUnixMs: 2, finishedAtUnixMs: 3,
        deadlineUnixMs: .max, result: [0, 255], error: error, nodeId: "node-b", rerun: 1, updatedAtUnixMs: 4)

    static let deadLetter = DeadLetter(version: 1, task: task, error: error, attempts: 5, deadLetteredAtUnixMs: 9, nodeId: "node-b")

    static let taskQuery = TaskQueryRequest(
        version: 1, taskId: "t-1", agentId: "work-1", state: .running, fromUnixMs: -1, toUnixMs: .max, cursor: "c-9", limit: 1000)

    static let taskQueryReply = TaskQueryReply(version: 1, tasks: [taskRecord, TaskRecord()], nextCursor: "c-10", error: error)

    static let taskResult = TaskResult(
        version: 1, taskId: "t-1", status: .deadLettered, result: [42], error: error, attempts: 5,
        startedAtUnixMs: 10, finishedAtUnixMs: 20, nodeId: "node-b", agentId: "work-1")

    static let heartbeat = NodeHeartbeat(
        version: 1, nodeId: "node-a", instanceId: "a-7f3c", capacity: 100, load: 1.25, agentCount: 12_345,
        ownedShards: (0..<64).map { NodeHeartbeat.OwnedShard(shard: UInt32($0), epoch: UInt64($0) * 1_000_003) },
        timestampUnixMs: 1_700_000_000_123, buildVersion: "1.4.0-β", draining: true, sequence: .max)

    static let assignment = ShardAssignment(
        version: 1, shard: 12, nodeId: "node-c", epoch: 44, assignedAtUnixMs: 1_700_000_000_000, reason: "node_lost",
        previousNodeId: "node-a")

    static let nodeInfo = NodeInfo(
        version: 1, nodeId: "node-a", instanceId: "node-a-7f3c", alive: true, draining: true, drainRequested: true, capacity: 100,
        load: 0.75, agentCount: 12_345, shards: [0, 7, 63, .max], lastHeartbeatUnixMs: 1_700_000_000_123, buildVersion: "1.4.0-β")
    static let listNodes = ListNodesRequest(version: 1)
    static let nodesReply = ListNodesReply(version: 1, nodes: [nodeInfo, NodeInfo()], leaderId: "supervisor-1", leaderEpoch: 9, error: error)
    static let drain = DrainNodeRequest(version: 1, nodeId: "node-a", undrain: true)
    static let drainReply = DrainNodeReply(version: 1, node: nodeInfo, candidates: 2, error: error)

    static let event = Event(
        version: 1, id: "e-1", domain: "agent", type: "restarted", agentId: "counter-1", nodeId: "node-a",
        reason: "crashed: \(unicode)", timestampUnixMs: 1_700_000_000_000,
        attributes: Dictionary(uniqueKeysWithValues: (0..<100).map { ("attr-\($0)", "värde \($0)") }), payload: [1, 2, 3])

    static let counter = MetricSnapshot.Counter(version: 1, name: "mesh_actions_total", labels: labels, value: .max)
    static let gauge = MetricSnapshot.Gauge(version: 1, name: "mesh_mailbox_depth", labels: ["agent": "a"], value: -0.5)
    static let histogram = MetricSnapshot.Histogram(
        version: 1, name: "mesh_action_duration_ns", labels: ["action": "echo"], unit: "ns", scheme: .logLinear,
        precisionBits: 5, firstBucket: 501, counts: [3, 0, 0, 0, 0, 0, 1, .max], count: 4, sum: 3_610_000,
        min: 880_000, max: 970_000)
    static let snapshot = MetricSnapshot(
        version: 1, service: "agent-worker", instance: "w-1", timestampUnixMs: 1_700_000_000_000,
        processStartedAtUnixMs: 1_699_999_000_000, counters: [counter, counter], gauges: [gauge],
        histograms: [histogram, MetricSnapshot.Histogram()])

    static let putAgent = PutAgentRequest(version: 1, spec: spec, mode: .upsert, expectedRevision: .max)
    static let getAgent = GetAgentRequest(version: 1, agentId: "counter-1")
    static let deleteAgent = DeleteAgentRequest(version: 1, agentId: "counter-1", expectedRevision: 42)
    static let listAgents = ListAgentsRequest(
        version: 1, selector: "team=search,tier in (gold, silver),!canary", nodeId: "node-ä", status: .running,
        cursor: "counter-0", limit: 1000)
    static let agentReply = AgentReply(version: 1, record: record, error: error)
    static let listReply = ListAgentsReply(
        version: 1, records: [record, AgentRecord(), record], nextCursor: "counter-1", error: error)

    static let seriesRequest = MetricSeriesRequest(
        version: 1, name: "mesh_action_duration", service: "mesh-agent-worker", instance: "w-1", minutes: 15, groupBy: "instance",
        labels: ["outcome": "ok"])
    static let point = MetricPoint(version: 1, timestampUnixMs: 1_700_000_000_123, value: 12.5, p50: 800, p90: 900, p99: 990, count: 42)
    static let series = MetricSeries(
        version: 1, name: "mesh_action_duration", kind: "histogram", unit: "ns", labels: ["service": "mesh-agent-worker"],
        points: [point, MetricPoint(), point])
    static let seriesReply = MetricSeriesReply(version: 1, series: [series, MetricSeries()], error: error, stepMs: 2000)
    static let summaryRequest = MetricsSummaryRequest(version: 1, minutes: 5)
    static let processSummary = ProcessSummary(
        version: 1, service: "mesh-registry", instance: "registry-1", up: true, cpuPercent: 12.5, residentBytes: 50_000_000,
        memoryPercent: 1.25, restarts: 2, lastSeenUnixMs: 1_700_000_000_000)
    static let summaryReply = MetricsSummaryReply(
        version: 1, generatedAtUnixMs: 1_700_000_000_000, windowSeconds: 60, actionsPerSecond: 1000.5, actionErrorRate: 0.01,
        tasksPerSecond: 20, taskFailureRate: 0.05, actionP50Ns: 180_000, actionP90Ns: 250_000, actionP99Ns: 900_000, taskP50Ns: 1_000_000,
        taskP99Ns: 9_000_000, processes: [processSummary, ProcessSummary()], firingAlerts: 1, error: error, actionRate: [point])
    static let alertsRequest = ListAlertsRequest(version: 1, includeResolved: true)
    static let alert = AlertInfo(
        version: 1, rule: "cpu_high", severity: "critical", summary: "CPU", state: "firing", labels: ["instance": "w-1"], value: 93.5,
        threshold: 80, comparison: ">", activeSinceUnixMs: 1_700_000_000_000, firedAtUnixMs: 1_700_000_060_000, resolvedAtUnixMs: 0)
    static let alertsReply = ListAlertsReply(version: 1, alerts: [alert, AlertInfo()], error: error)

    /// One fully populated value of every message type, in `MessageType.allMessages` order.
    static let full: [any MeshMessage] = [
        error, spec, placement, record, request, reply, task, taskResult, taskRecord, deadLetter, taskQuery, taskQueryReply, heartbeat,
        heartbeat.ownedShards[5], assignment, nodeInfo, listNodes, nodesReply, drain, drainReply, event, snapshot, counter, gauge, histogram,
        putAgent, getAgent, deleteAgent, listAgents, agentReply, listReply,
        seriesRequest, point, series, seriesReply, summaryRequest, processSummary, summaryReply, alertsRequest, alert, alertsReply,
    ]

    /// Default-initialised value of every message type.
    static let empty: [any MeshMessage] = [
        ErrorReply(), AgentSpec(), Placement(), AgentRecord(), ActionRequest(), ActionReply(), TaskEnvelope(),
        TaskResult(), TaskRecord(), DeadLetter(task: TaskEnvelope(version: 0)), TaskQueryRequest(), TaskQueryReply(), NodeHeartbeat(),
        NodeHeartbeat.OwnedShard(), ShardAssignment(), NodeInfo(), ListNodesRequest(), ListNodesReply(), DrainNodeRequest(), DrainNodeReply(),
        Event(), MetricSnapshot(),
        MetricSnapshot.Counter(), MetricSnapshot.Gauge(), MetricSnapshot.Histogram(),
        PutAgentRequest(spec: AgentSpec(version: 0)), GetAgentRequest(), DeleteAgentRequest(), ListAgentsRequest(), AgentReply(), ListAgentsReply(),
        MetricSeriesRequest(), MetricPoint(), MetricSeries(), MetricSeriesReply(), MetricsSummaryRequest(), ProcessSummary(),
        MetricsSummaryReply(), ListAlertsRequest(), AlertInfo(), ListAlertsReply(),
    ]
}

/// Deterministic pseudo-random numbers (SplitMix64) so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476C_E5B9_E2D9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A minimal protobuf writer for hand-made inputs (unknown fields, bad values).
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    mutating func tag(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }
    mutating func varintField(_ field: UInt64, _ value: UInt64) {
        tag(field, 0)
        varint(value)
    }
    mutating func bytesField(_ field: UInt64, _ value: [UInt8]) {
        tag(field, 2)
        varint(UInt64(value.count))
        bytes += value
    }
    mutating func fixed64Field(_ field: UInt64, _ value: UInt64) {
        tag(field, 1)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
    mutating func fixed32Field(_ field: UInt64, _ value: UInt32) {
        tag(field, 5)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

/// Decodes `bytes` as the same type as `sample` (opens the existential).
func decodeLike<M: MeshMessage>(_ sample: M, _ bytes: [UInt8], limits: WireLimits = .default) throws(WireError) -> M {
    try M(serializedBytes: bytes, limits: limits)
}
