import MeshProto
import Testing

/// Forward compatibility: newer writers add fields and enum values; older readers must
/// keep working.
@Suite struct CompatibilityTests {
    /// Unknown fields of every wire type, as a newer schema would write them.
    static func unknownFields() -> [UInt8] {
        var writer = ProtoWriter()
        writer.varintField(1000, 12_345)
        writer.bytesField(77, Array("from the future".utf8))
        writer.fixed64Field(78, 0xDEAD_BEEF_CAFE_F00D)
        writer.fixed32Field(79, 0xCAFE)
        writer.varintField(536_870_911, .max)  // highest field number
        var nested = ProtoWriter()
        nested.varintField(1, 2)
        nested.bytesField(2, [1, 2, 3])
        writer.bytesField(80, nested.bytes)  // an unknown nested message
        return writer.bytes
    }

    @Test func unknownFieldsAreSkipped() throws {
        func check<M: MeshMessage>(_ message: M) throws {
            let known = message.serializedBytes()
            let extra = Self.unknownFields()
            #expect(try M(serializedBytes: known + extra) == message, "\(M.messageType) appended")
            #expect(try M(serializedBytes: extra + known) == message, "\(M.messageType) prepended")
        }
        for message in Samples.full { try check(message) }
        for message in Samples.empty { try check(message) }
    }

    @Test func unknownFieldsInsideNestedMessages() throws {
        // AgentRecord { spec = AgentSpec { id = "a", <unknown> }, placement = { <unknown>, shard = 5 } }
        var spec = ProtoWriter()
        spec.varintField(1, 1)
        spec.bytesField(2, Array("a".utf8))
        spec.bytes += Self.unknownFields()
        var placement = ProtoWriter()
        placement.bytes += Self.unknownFields()
        placement.varintField(3, 5)
        var record = ProtoWriter()
        record.varintField(1, 2)
        record.bytesField(2, spec.bytes)
        record.bytesField(4, placement.bytes)
        record.bytesField(99, [0xFF, 0xFF])  // unknown, with bytes that are not a message
        let decoded = try AgentRecord(serializedBytes: record.bytes)
        #expect(decoded.version == 2)
        #expect(decoded.spec == AgentSpec(id: "a"))
        #expect(decoded.placement == Placement(version: 0, shard: 5))
    }

    @Test func unknownEnumValuesAreKept() throws {
        var writer = ProtoWriter()
        writer.varintField(1, 1)
        writer.varintField(3, 42)  // AgentRecord.status
        let record = try AgentRecord(serializedBytes: writer.bytes)
        #expect(record.status == .unrecognized(42))
        #expect(record.serializedBytes().suffix(2) == [0x18, 42])  // written back unchanged
        #expect(try AgentRecord(serializedBytes: record.serializedBytes()) == record)

        var negative = ProtoWriter()
        negative.varintField(6, UInt64(bitPattern: -3))  // TaskEnvelope.priority = -3
        #expect(try TaskEnvelope(serializedBytes: negative.bytes).priority == .unrecognized(-3))

        var huge = ProtoWriter()
        huge.varintField(3, .max)  // truncated to int32 as protobuf specifies
        #expect(try ActionReply(serializedBytes: huge.bytes).status == .unrecognized(-1))
    }

    @Test func unspecifiedEnumsReadAsDocumentedDefaults() throws {
        let spec = try AgentSpec(serializedBytes: [UInt8]())
        #expect(spec.restartType == .permanent)
        #expect(spec.groupStrategy == .oneForOne)
        #expect(try TaskEnvelope(serializedBytes: [UInt8]()).priority == .normal)
        #expect(try AgentRecord(serializedBytes: [UInt8]()).status == .unspecified)
        #expect(AgentStatus(rawValue: 3) == .running)
        #expect(RestartType.permanent.rawValue == 1)
    }

    @Test func versionsAreCarriedAsWritten() throws {
        #expect(ActionRequest().version == SchemaVersion.current)
        #expect(try ActionRequest(serializedBytes: ActionRequest(version: 7).serializedBytes()).version == 7)
        #expect(try ActionRequest(serializedBytes: [0x08, 0x00]).version == 0)
    }

    @Test func repeatedMapKeyKeepsTheLastValue() throws {
        func entry(_ key: String, _ value: String) -> [UInt8] {
            var entry = ProtoWriter()
            entry.bytesField(1, Array(key.utf8))
            entry.bytesField(2, Array(value.utf8))
            return entry.bytes
        }
        var writer = ProtoWriter()
        writer.bytesField(9, entry("k", "first"))
        writer.bytesField(9, entry("k", "second"))
        writer.bytesField(9, entry("other", "x"))
        #expect(try Event(serializedBytes: writer.bytes).attributes == ["k": "second", "other": "x"])
    }
}
