import MeshProto
import Testing

/// Untrusted input: every failure is a `WireError`, nothing traps.
@Suite struct RobustnessTests {
    /// Decodes `bytes` as every message type; returns how many decodes failed.
    @discardableResult
    static func decodeAsEveryType(_ bytes: [UInt8], limits: WireLimits = .default) -> Int {
        var failures = 0
        for type in MessageType.allMessages {
            do { _ = try type.init(serializedBytes: bytes, limits: limits) } catch { failures += 1 }
        }
        return failures
    }

    @Test func oversizedInputIsRejectedBeforeParsing() throws {
        let big = [UInt8](repeating: 0, count: WireLimits.defaultMaxMessageBytes + 1)
        for type in MessageType.allMessages {
            #expect(throws: WireError(code: .tooLarge, messageType: type.messageType, byteCount: big.count)) {
                try type.init(serializedBytes: big, limits: .default)
            }
            #expect(throws: WireError.self) { try type.init(serializedBytes: AnyCollection(big), limits: .default) }
        }
        let bytes = ActionRequest(agentId: "a", payload: [1, 2, 3]).serializedBytes()
        #expect(try ActionRequest(serializedBytes: bytes, limits: WireLimits(maxMessageBytes: bytes.count)).agentId == "a")
        let error = #expect(throws: WireError.self) {
            try ActionRequest(serializedBytes: bytes, limits: WireLimits(maxMessageBytes: bytes.count - 1))
        }
        #expect(error?.code == .tooLarge)
        // A larger limit admits a larger message.
        let large = ActionRequest(payload: [UInt8](repeating: 1, count: 5 << 20))
        #expect(throws: WireError.self) { try ActionRequest(serializedBytes: large.serializedBytes()) }
        #expect(try ActionRequest(serializedBytes: large.serializedBytes(), limits: WireLimits(maxMessageBytes: 6 << 20)) == large)
    }

    @Test func invalidUTF8IsAnInvalidValue() throws {
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x61, 0xE2, 0x82], [0xF8, 0x88, 0x80, 0x80, 0x80]] {
            var writer = ProtoWriter()
            writer.bytesField(3, bad)  // ActionRequest.agent_id
            let error = #expect(throws: WireError.self) { try ActionRequest(serializedBytes: writer.bytes) }
            #expect(error?.code == .invalidValue)
            #expect(error?.field == "ActionRequest.agent_id")
            #expect(error?.messageType == ActionRequest.messageType)
        }
        // In a map key, and in a nested message (reported against the outer type).
        var entry = ProtoWriter()
        entry.bytesField(1, [0xFF, 0xFE])
        var event = ProtoWriter()
        event.bytesField(9, entry.bytes)
        let mapError = #expect(throws: WireError.self) { try Event(serializedBytes: event.bytes) }
        #expect(mapError?.field == "Event.attributes")
        var spec = ProtoWriter()
        spec.bytesField(2, [0x80])
        var record = ProtoWriter()
        record.bytesField(2, spec.bytes)
        let nestedError = #expect(throws: WireError.self) { try AgentRecord(serializedBytes: record.bytes) }
        #expect(nestedError?.code == .invalidValue)
        #expect(nestedError?.field == "AgentSpec.id")
        #expect(nestedError?.messageType == AgentRecord.messageType)
    }

    @Test func embeddedNulEndsAString() throws {
        // C strings end at NUL: the documented limit of the contract.
        var writer = ProtoWriter()
        writer.bytesField(3, [0x61, 0x62, 0x00, 0x63])
        #expect(try ActionRequest(serializedBytes: writer.bytes).agentId == "ab")
    }

    @Test func malformedInputsAreMalformed() throws {
        let cases: [[UInt8]] = [
            [0x0A],  // length-delimited field without a length
            [0x12, 0x05, 0x61],  // length past the end
            [0x08],  // varint field without a value
            [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // 11-byte varint
            [0x00, 0x01],  // field number 0
            [0x0F],  // wire type 7
            [0x0B, 0x0C],  // deprecated group wire types
            [0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],  // 4 GiB length
            [0x11, 0x01, 0x02],  // fixed64 past the end
            [0x10, 0x05],  // request_id (a string) sent as a varint
            [0x2A, 0x02, 0x08],  // payload length past the end
        ]
        for bytes in cases {
            let error = #expect(throws: WireError.self, "\(bytes)") { try ActionRequest(serializedBytes: bytes) }
            #expect(error?.code == .malformed)
            #expect(error?.byteCount == bytes.count)
        }
    }

    @Test func randomBytesNeverCrash() {
        var random = SplitMix64(seed: 0x5EED)
        var failures = 0
        for round in 0..<4_000 {
            let count = round % 7 == 0 ? Int.random(in: 0...2_048, using: &random) : Int.random(in: 0...64, using: &random)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            failures += Self.decodeAsEveryType(bytes)
        }
        #expect(failures > 0)
    }

    @Test func truncatedEncodingsNeverCrash() throws {
        var random = SplitMix64(seed: 42)
        for message in Samples.full {
            let bytes = message.serializedBytes()
            let lengths: [Int] =
                bytes.count <= 4_096 ? Array(0..<bytes.count) : (0..<400).map { _ in Int.random(in: 0..<bytes.count, using: &random) }
            var failures = 0
            for length in lengths { failures += Self.decodeAsEveryType(Array(bytes[..<length])) }
            #expect(failures > 0)
            #expect(throws: Never.self) { try decodeLike(message, bytes) }
        }
    }

    @Test func corruptedEncodingsNeverCrash() {
        var random = SplitMix64(seed: 7)
        for message in Samples.full {
            let bytes = message.serializedBytes()
            guard bytes.count <= 65_536 else { continue }
            for _ in 0..<300 {
                var corrupted = bytes
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    let index = Int.random(in: 0..<corrupted.count, using: &random)
                    corrupted[index] ^= UInt8.random(in: 1...255, using: &random)
                }
                Self.decodeAsEveryType(corrupted)
            }
        }
    }

    @Test func errorDescriptionsCarryNoPayload() {
        var writer = ProtoWriter()
        writer.bytesField(5, Array("secret-token".utf8))
        writer.bytesField(3, [0xFF])
        let error = #expect(throws: WireError.self) { try ActionRequest(serializedBytes: writer.bytes) }
        #expect(error?.description.contains("secret") == false)
        #expect(error?.description.contains("mesh.v1.ActionRequest") == true)
    }
}
