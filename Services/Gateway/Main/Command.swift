import ArgumentParser
import MeshCore
import MeshRuntime
import GatewayService

/// `mesh-gateway`: The operators' HTTP API.
@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-gateway",
        abstract: "The operators' HTTP API: agents, actions, timeline, nodes, API keys.",
        discussion: "Every option can also be set with its MESH_* environment variable; see the README.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var gateway: GatewayOptions

    func run() async throws {
        let gateway = self.gateway
        try await ServiceHost.run(Gateway.descriptor, options: options) { context in
            try await Gateway.services(context: context, options: gateway)
        }
    }
}
