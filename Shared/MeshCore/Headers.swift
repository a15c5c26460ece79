/// NATS header names the mesh sets on its messages — the only place they are spelled.
public enum MeshHeader {
    /// The protobuf message type of the payload, e.g. `mesh.v1.ActionRequest`.
    public static let messageType = "Mesh-Type"
    /// W3C trace context (`traceparent`).
    public static let traceparent = "traceparent"
    /// JetStream de-duplication id.
    public static let messageID = "Nats-Msg-Id"
    /// KV operation of a message in a bucket's stream: absent = put, `DEL`, `PURGE`.
    public static let keyValueOperation = "KV-Operation"
    /// ``keyValueOperation`` value of a delete marker.
    public static let keyValueDelete = "DEL"
    /// ``keyValueOperation`` value of a purge marker.
    public static let keyValuePurge = "PURGE"
}
