public import ArgumentParser

/// `meshctl`: the operator and developer CLI.
public struct MeshCtl: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "meshctl",
        abstract: "Run and operate the agent mesh.",
        subcommands: [Up.self, Down.self, Status.self, Probe.self])

    public init() {}
}
