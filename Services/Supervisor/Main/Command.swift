import ArgumentParser
import MeshCore
import MeshRuntime
import SupervisorService

/// `mesh-supervisor`: the cluster brain.
@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-supervisor",
        abstract: "The cluster brain: node liveness, shard assignment and agent restart policy.",
        discussion: "Every option can also be set with its MESH_* environment variable; see the README.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var supervisor: SupervisorOptions

    func run() async throws {
        let supervisor = self.supervisor
        try await ServiceHost.run(Supervisor.descriptor, options: options) { context in
            try Supervisor.services(context: context, options: supervisor)
        }
    }
}
