import ArgumentParser
import MeshCore
import MeshRuntime
import MetricsCollectorService

/// `mesh-metrics-collector`: Cluster metrics: snapshots from every process, Prometheus exposition, alerts, rollups.
@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-metrics-collector",
        abstract: "Cluster metrics: snapshots from every process, Prometheus exposition, alerts, rollups.",
        discussion: "Every option can also be set with its MESH_* environment variable; see the README.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var collector: CollectorOptions

    func run() async throws {
        let collector = self.collector
        try await ServiceHost.run(MetricsCollector.descriptor, options: options) { context in
            try MetricsCollector.services(context: context, options: collector)
        }
    }
}
