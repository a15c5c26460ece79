import ArgumentParser
import MeshCore
import MeshRuntime
import GatewayService

/// `mesh-gateway`: The operators' HTTP API, live events and dashboard.
@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-gateway",
        abstract: "The operators' HTTP API, live events and dashboard.",
        discussion: "Every option can also be set with its MESH_* environment variable; see the README.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await ServiceHost.run(Gateway.descriptor, options: options) { context in
            try Gateway.services(context: context)
        }
    }
}
