public import ArgumentParser

/// `meshctl`: the operator and developer CLI.
public struct MeshCtl: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "meshctl",
        abstract: "Run and operate the agent mesh.",
        subcommands: [Up.self, Down.self, Status.self, Agents.self, Act.self, Tasks.self, Nodes.self, Keys.self, Probe.self, Bench.self])

    public init() {}
}

import Foundation

/// Writes one line to standard output, unbuffered (so progress shows at once even when
/// stdout is a file or a pipe).
func say(_ line: String = "") {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
