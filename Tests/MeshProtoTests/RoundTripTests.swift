@testable import MeshProto
import Testing

@Suite struct RoundTripTests {
    func roundTrip<M: MeshMessage>(_ message: M) throws {
        let bytes = message.serializedBytes()
        let decoded = try M(serializedBytes: bytes)
        #expect(decoded == message, "\(M.messageType)")
        // Decoding from a slice and from a non-contiguous collection gives the same value.
        let padded = [0xAA] + bytes + [0xBB]
        #expect(try M(serializedBytes: padded[1..<(padded.count - 1)]) == message)
        #expect(try M(serializedBytes: AnyCollection(bytes)) == message)
        #expect(try bytes.withUnsafeBytes { buffer throws(WireError) in try M(unsafeBytes: buffer) } == message)
    }

    @Test func everyMessageWithAllFieldsSet() throws {
        #expect(Samples.full.count == MessageType.allMessages.count)
        for message in Samples.full { try roundTrip(message) }
    }

    @Test func everyMessageWithDefaults() throws {
        for message in Samples.empty { try roundTrip(message) }
    }

    @Test func defaultsEncodeCompactly() {
        // proto3 leaves zero values out: a default request is just `version = 1` (08 01).
        #expect(ActionRequest().serializedBytes() == [0x08, 0x01])
        #expect(ActionRequest(version: 0).serializedBytes() == [])
        // Enums whose default is a real value (restart type, strategy, priority) are written.
        #expect(AgentSpec().serializedBytes() == [0x08, 0x01, 0x38, 0x01, 0x48, 0x01])
        for message in Samples.empty { #expect(message.serializedBytes().count <= 10) }
    }

    @Test func emptyInputDecodesToVersionZeroDefaults() throws {
        #expect(try ActionRequest(serializedBytes: [UInt8]()) == ActionRequest(version: 0))
        // An absent nested spec reads as an empty spec with version 0.
        #expect(try AgentRecord(serializedBytes: [UInt8]()).spec == AgentSpec(version: 0))
        #expect(try AgentRecord(serializedBytes: [UInt8]()).placement == nil)
    }

    @Test func largeValues() throws {
        let payload = [UInt8](repeating: 0xFE, count: 3 << 20)
        let request = ActionRequest(requestId: String(repeating: "é", count: 100_000), payload: payload)
        try roundTrip(request)
        var labels: [String: String] = [:]
        for index in 0..<5_000 { labels["label-\(index)"] = String(repeating: "v", count: index % 50) }
        try roundTrip(AgentSpec(id: "many-labels", labels: labels))
        try roundTrip(MetricSnapshot.Histogram(counts: (0..<50_000).map { UInt64($0) * 1_000_003 }))
    }

    @Test func sizesAroundTheEncoderArenaBlocks() throws {
        // The encoder builds the C message in a 1 KiB stack block, then 4 KiB heap blocks.
        for size in stride(from: 0, through: 9_000, by: 37) {
            let text = String(repeating: "x", count: size)
            try roundTrip(Event(id: text, domain: "d", attributes: ["k\(size)": text, "a": "b"], payload: Array(text.utf8)))
        }
    }

    @Test func extremeScalars() throws {
        try roundTrip(MetricSnapshot.Gauge(value: .infinity))
        try roundTrip(MetricSnapshot.Gauge(value: -.greatestFiniteMagnitude))
        try roundTrip(MetricSnapshot.Gauge(value: .leastNonzeroMagnitude))
        try roundTrip(NodeHeartbeat(capacity: .max, load: -0.0, agentCount: .max, timestampUnixMs: .min))
        try roundTrip(TaskEnvelope(deadlineUnixMs: .min, attempt: .max, maxAttempts: .max, submittedAtUnixMs: .max))
    }

    @Test func everyEnumCase() throws {
        for status in [AgentStatus.unspecified, .pending, .starting, .running, .stopping, .stopped, .failed, .restarting] {
            try roundTrip(AgentRecord(status: status))
        }
        for type in [RestartType.permanent, .transient, .temporary] { try roundTrip(AgentSpec(restartType: type)) }
        for strategy in [GroupStrategy.oneForOne, .oneForAll, .restForOne] { try roundTrip(AgentSpec(groupStrategy: strategy)) }
        for status in [ActionStatus.unspecified, .ok, .error] { try roundTrip(ActionReply(status: status)) }
        for priority in [TaskPriority.high, .normal, .low] { try roundTrip(TaskEnvelope(priority: priority)) }
        for status in [TaskStatus.unspecified, .succeeded, .failed, .expired, .cancelled, .deadLettered] {
            try roundTrip(TaskResult(status: status))
        }
        for scheme in [HistogramScheme.unspecified, .logLinear] { try roundTrip(MetricSnapshot.Histogram(scheme: scheme)) }
        try roundTrip(AgentRecord(status: .unrecognized(99)))
        try roundTrip(TaskEnvelope(priority: .unrecognized(-7)))
        for mode in [PutMode.create, .update, .upsert, .unrecognized(9)] { try roundTrip(PutAgentRequest(mode: mode)) }
        for status in [AgentStatus.unspecified, .running, .failed] { try roundTrip(ListAgentsRequest(status: status)) }
        // An unset put mode reads as create, which never overwrites.
        #expect(try PutAgentRequest(serializedBytes: [UInt8]()).mode == .create)
        // A reply carries a record or an error; neither reads as nil.
        #expect(try AgentReply(serializedBytes: [UInt8]()).record == nil)
        #expect(try ListAgentsReply(serializedBytes: [UInt8]()).error == nil)
    }

    @Test func encodingIsDeterministic() {
        for message in Samples.full { #expect(message.serializedBytes() == message.serializedBytes()) }
        // Equal maps built in different orders encode identically (entries sorted by key).
        var forward: [String: String] = [:]
        var backward: [String: String] = [:]
        for index in 0..<200 { forward["k\(index)"] = "v\(index)" }
        for index in (0..<200).reversed() { backward["k\(index)"] = "v\(index)" }
        #expect(Event(attributes: forward).serializedBytes() == Event(attributes: backward).serializedBytes())
    }

    @Test func messageTypesMatchTheProtoDescriptors() {
        func name<M: MeshMessage>(_ type: M.Type) -> String {
            (type as? any CBridged.Type).map { descriptorName($0) } ?? "not bridged"
        }
        func descriptorName<M: CBridged>(_ type: M.Type) -> String { WireCodec.descriptorName(type) }
        for type in MessageType.allMessages {
            #expect(name(type) == type.messageType.rawValue)
            #expect(type.messageType.messageType == type)
        }
        #expect(Set(MessageType.allMessages.map { $0.messageType }).count == MessageType.allMessages.count)
        #expect(ActionRequest.messageType.rawValue == "mesh.v1.ActionRequest")
        #expect(MessageType(rawValue: "mesh.v1.Nope").messageType == nil)
    }
}
