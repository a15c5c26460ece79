import ArgumentParser
import MeshCore
import MeshRuntime
import RegistryService

/// `mesh-registry`: The agent directory: specs, status and placement of every agent.
@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-registry",
        abstract: "The agent directory: specs, status and placement of every agent.",
        discussion: "Every option can also be set with its MESH_* environment variable; see the README.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var registry: RegistryOptions

    func run() async throws {
        let registry = self.registry
        try await ServiceHost.run(Registry.descriptor, options: options) { context in
            try await Registry.services(context: context, options: registry)
        }
    }
}
