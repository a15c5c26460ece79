/// NATS header names the mesh sets on its messages — the only place they are spelled.
public enum MeshHeader {
    /// The protobuf message type of the payload, e.g. `mesh.v1.ActionRequest`.
    public static let messageType = "Mesh-Type"
    /// W3C trace context (`traceparent`).
    public static let traceparent = "traceparent"
    /// JetStream de-duplication id.
    public static let messageID = "Nats-Msg-Id"
}
