/// A message of the mesh wire contract (`Shared/Proto`, package `mesh.v1`).
///
/// Every message is a Swift value type; the protobuf-c code behind it never escapes this
/// module. Decoding is safe on untrusted bytes: the size is checked first, unknown fields
/// are skipped, and every failure is a `WireError`.
///
/// ```swift
/// let bytes = request.serializedBytes()
/// let header = ActionRequest.messageType.rawValue        // "mesh.v1.ActionRequest"
/// let decoded = try ActionRequest(serializedBytes: bytes)
/// ```
public protocol MeshMessage: Sendable, Hashable {
    /// The fully qualified protobuf name, sent in a NATS header so receivers know the type.
    static var messageType: MessageType { get }

    /// Decodes a message from contiguous memory without copying it first.
    /// - Parameters:
    ///   - bytes: the encoding; only read during the call.
    ///   - limits: size bound checked before parsing.
    /// - Throws: `WireError` (`.tooLarge`, `.malformed`, `.invalidValue`).
    init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError)

    /// The protobuf encoding of this message (deterministic: map entries are sorted by key).
    func serializedBytes() -> [UInt8]
}

extension MeshMessage {
    /// Decodes a message from any collection of bytes (`[UInt8]`, `ArraySlice`, `Data`...).
    ///
    /// Contiguous collections are read in place; others are copied once, after the size check.
    /// - Parameters:
    ///   - bytes: the encoding.
    ///   - limits: size bound checked before parsing (default 4 MiB).
    /// - Throws: `WireError` (`.tooLarge`, `.malformed`, `.invalidValue`).
    @inlinable
    public init(serializedBytes bytes: some Collection<UInt8>, limits: WireLimits = .default) throws(WireError) {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(WireError) -> Self in try Self(unsafeBytes: UnsafeRawBufferPointer(buffer), limits: limits) }
        }
        if let result {
            self = try result.get()
            return
        }
        let count = bytes.count
        guard count <= limits.maxMessageBytes else {
            throw WireError(code: .tooLarge, messageType: Self.messageType, byteCount: count)
        }
        let copy = Array(bytes)
        let copied = copy.withUnsafeBytes { buffer in
            Result { () throws(WireError) -> Self in try Self(unsafeBytes: buffer, limits: limits) }
        }
        self = try copied.get()
    }

    /// Decodes a message from contiguous memory with the default limits (4 MiB).
    /// - Throws: `WireError`.
    @inlinable
    public init(unsafeBytes bytes: UnsafeRawBufferPointer) throws(WireError) {
        try self.init(unsafeBytes: bytes, limits: .default)
    }
}

/// The name of a message type as spelled in the `.proto` files, e.g. `mesh.v1.ActionRequest`.
///
/// It travels in a NATS header so a receiver can check (or dispatch on) the type.
public struct MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The fully qualified name.
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// Every message type of the contract, top-level and nested.
    public static let allMessages: [any MeshMessage.Type] = [
        ErrorReply.self,
        AgentSpec.self, Placement.self, AgentRecord.self,
        ActionRequest.self, ActionReply.self,
        TaskEnvelope.self, TaskResult.self, TaskRecord.self, DeadLetter.self, TaskQueryRequest.self, TaskQueryReply.self,
        NodeHeartbeat.self, NodeHeartbeat.OwnedShard.self, ShardAssignment.self,
        NodeInfo.self, ListNodesRequest.self, ListNodesReply.self, DrainNodeRequest.self, DrainNodeReply.self,
        Event.self,
        MetricSnapshot.self, MetricSnapshot.Counter.self, MetricSnapshot.Gauge.self, MetricSnapshot.Histogram.self,
        PutAgentRequest.self, GetAgentRequest.self, DeleteAgentRequest.self, ListAgentsRequest.self, AgentReply.self,
        ListAgentsReply.self,
        MetricSeriesRequest.self, MetricPoint.self, MetricSeries.self, MetricSeriesReply.self, MetricsSummaryRequest.self,
        ProcessSummary.self, MetricsSummaryReply.self, ListAlertsRequest.self, AlertInfo.self, ListAlertsReply.self,
    ]

    /// The message type with this name, or `nil` if the contract has none.
    public var messageType: (any MeshMessage.Type)? {
        Self.allMessages.first { $0.messageType == self }
    }
}

/// Schema version written into field 1 (`version`) of every message.
///
/// Writers set `current`; a received 0 means the writer did not set it and reads as 1.
/// Additive changes keep the version; a change of meaning of an existing field bumps it.
public enum SchemaVersion {
    /// The version this module writes (1).
    public static let current: UInt32 = 1
}
