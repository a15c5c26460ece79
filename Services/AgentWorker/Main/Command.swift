import AgentWorkerService
import ArgumentParser
import MeshCore
import MeshRuntime

/// `mesh-agent-worker`: hosts the agents of the shards it owns.
@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-agent-worker",
        abstract: "Hosts the agents of the shards it owns; runs their actions and tasks.",
        discussion: "Every option can also be set with its MESH_* environment variable; see the README.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var worker: WorkerOptions

    func run() async throws {
        let worker = self.worker
        try await ServiceHost.run(AgentWorker.descriptor, options: options) { context in
            try AgentWorker.services(context: context, options: worker)
        }
    }
}
