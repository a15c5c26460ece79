import MeshCore

/// `echo`: replies with the payload, whatever the action. Stateless; no config.
///
/// ```json
/// spec:   {"kind": "echo"}
/// action: any name, any payload → the same payload
/// ```
public struct EchoKind: AgentBehavior {
    /// The registered name, `echo`.
    public static let kindName = AgentKindName.echo

    public init(configuration: NoConfiguration, setup: AgentSetup) {}

    public static let answersInline = true

    public func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        try handleInline(action, payload: payload, context: context)
    }

    public func handleInline(_ action: String, payload: [UInt8], context: AgentContext) throws -> [UInt8] { payload }

    public func mayChangeState(_ action: String) -> Bool { false }
}
