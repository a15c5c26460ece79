// libFuzzer harness for every MeshProto decoder. Built and run by Tests/Fuzz/run.sh.
//
// Each input is decoded as every message type of the contract. A decode must either fail
// with a WireError or succeed; a successful decode must re-encode to bytes that decode to
// the same encoding again (decode → encode is a fixed point after one step).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MeshProto

/// Decodes `bytes` as `M`; on success checks the re-encoding round trip.
func exercise<M: MeshMessage>(_: M.Type, _ bytes: UnsafeRawBufferPointer) {
    guard let message = try? M(unsafeBytes: bytes, limits: .default) else { return }
    let encoded = message.serializedBytes()
    guard let again = try? M(serializedBytes: encoded) else {
        fatalError("\(M.messageType): re-encoded bytes do not decode")
    }
    guard again.serializedBytes() == encoded else {
        fatalError("\(M.messageType): encoding is not stable after a round trip")
    }
}

func exerciseAny(_ type: any MeshMessage.Type, _ bytes: UnsafeRawBufferPointer) { exercise(type, bytes) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    for type in MessageType.allMessages { exerciseAny(type, bytes) }
    // The size limit path, with a limit below the input size.
    if size > 8 { _ = try? ActionRequest(unsafeBytes: bytes, limits: WireLimits(maxMessageBytes: 8)) }
    return 0
}

/// With `MESH_FUZZ_WRITE_SEEDS=<dir>` set, writes one valid encoding per message type (and a
/// few variants) into that directory and exits: the seed corpus.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32 {
    guard let directory = getenv("MESH_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) else { return 0 }
    let error = ErrorReply(code: "busy", message: "mailbox full ✓", retryAfterMs: 50)
    let spec = AgentSpec(
        id: "counter-1", kind: "counter", generation: 3, config: Array(#"{"start":5}"#.utf8),
        labels: ["team": "search", "tier": "gold"], restartType: .transient, group: "g", groupStrategy: .oneForAll,
        maxRestarts: 5, periodSeconds: 60, mailboxCapacity: 1024, actionTimeoutMs: 5_000)
    let placement = Placement(nodeId: "node-a", shard: 7, shardEpoch: 12)
    let histogram = MetricSnapshot.Histogram(
        name: "mesh_action_duration_ns", labels: ["action": "echo"], unit: "ns", precisionBits: 5, firstBucket: 501,
        counts: [3, 0, 1], count: 4, sum: 3_610_000, min: 880_000, max: 970_000)
    let seeds: [any MeshMessage] = [
        error, spec, placement,
        AgentRecord(spec: spec, status: .running, placement: placement, revision: 9, restartCount: 1, lastError: error,
                    createdAtUnixMs: 1_700_000_000_000, updatedAtUnixMs: 1_700_000_000_001),
        ActionRequest(requestId: "r-1", agentId: "echo-1", action: "echo", payload: Array("héllo".utf8),
                      deadlineUnixMs: 1_700_000_002_000, shardEpoch: 7),
        ActionReply(requestId: "r-1", status: .error, payload: [1, 2], error: error, servedBy: "node-a", shardEpoch: 7),
        TaskEnvelope(taskId: "t-1", agentId: "work-1", action: "run", payload: [9], priority: .high, deadlineUnixMs: 5,
                     attempt: 1, maxAttempts: 3, idempotencyKey: "k", submittedAtUnixMs: 4),
        TaskResult(taskId: "t-1", status: .failed, result: [1], error: error, attempts: 3, startedAtUnixMs: 1,
                   finishedAtUnixMs: 2, nodeId: "node-b", agentId: "work-1"),
        NodeHeartbeat(nodeId: "node-a", instanceId: "i-1", capacity: 100, load: 0.5, agentCount: 10,
                      ownedShards: [.init(shard: 1, epoch: 2), .init(shard: 3, epoch: 4)], timestampUnixMs: 6,
                      buildVersion: "1.0.0", draining: true, sequence: 8),
        NodeHeartbeat.OwnedShard(shard: 1, epoch: 2),
        ShardAssignment(shard: 4, nodeId: "node-c", epoch: 5, assignedAtUnixMs: 6, reason: "rebalance", previousNodeId: "node-a"),
        ListNodesReply(nodes: [NodeInfo(nodeId: "node-a", instanceId: "node-a-1", alive: true, shards: [1, 2])], leaderId: "s-1"),
        DrainNodeRequest(nodeId: "node-a", undrain: true),
        DrainNodeReply(node: NodeInfo(nodeId: "node-a", draining: true), candidates: 2, error: error),
        Event(id: "e-1", domain: "agent", type: "restarted", agentId: "counter-1", nodeId: "node-a", reason: "crash",
              timestampUnixMs: 7, attributes: ["attempt": "2", "ü": "ñ"], payload: [3]),
        MetricSnapshot(service: "agent-worker", instance: "w-1", timestampUnixMs: 1, processStartedAtUnixMs: 0,
                       counters: [.init(name: "mesh_actions_total", labels: ["a": "b"], value: 42)],
                       gauges: [.init(name: "mesh_agents", value: 3.5)], histograms: [histogram]),
        MetricSnapshot.Counter(name: "c", labels: ["x": "y"], value: 1),
        MetricSnapshot.Gauge(name: "g", value: -1),
        histogram,
    ]
    for (index, seed) in seeds.enumerated() {
        let bytes = seed.serializedBytes()
        let path = "\(directory)/seed-\(index)-\(type(of: seed).messageType.rawValue)"
        guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    exit(0)
}
