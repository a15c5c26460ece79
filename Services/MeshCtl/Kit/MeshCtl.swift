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

/// Prints a JSON value (`JSONSerialization` types) with sorted keys: pretty for people, or
/// one line per value (`compact`) for scripts that read line by line.
func printJSON(_ value: Any, compact: Bool = false) {
    let options: JSONSerialization.WritingOptions = compact ? [.sortedKeys, .fragmentsAllowed] : [.prettyPrinted, .sortedKeys, .fragmentsAllowed]
    guard let data = try? JSONSerialization.data(withJSONObject: value, options: options) else { return }
    say(String(decoding: data, as: UTF8.self))
}
