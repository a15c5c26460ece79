import Foundation

/// The names of the built-in agent kinds — the one list the registry validates specs
/// against (custom kinds are added per deployment with `--extra-kinds` /
/// `MESH_EXTRA_KINDS`). The agent SDK registers its behaviours under these names.
///
/// ```swift
/// AgentKindName.builtIn.contains(spec.kind)   // "echo", "counter", …
/// ```
public enum AgentKindName {
    /// Answers with the action's payload.
    public static let echo = "echo"
    /// Stateful counter (add/get).
    public static let counter = "counter"
    /// Stateful key-value map (put/get/delete/list).
    public static let keyValue = "kv"
    /// Burns CPU or sleeps, for load tests.
    public static let work = "work"
    /// Fails on demand or every Nth action, for supervision tests.
    public static let fail = "fail"
    /// Sends an action to several agents and aggregates (all / first / majority).
    public static let fanout = "fanout"
    /// Runs an allow-listed command, JSON on stdin/stdout.
    public static let exec = "exec"
    /// POSTs JSON to a configured HTTP endpoint.
    public static let http = "http"

    /// Every built-in kind, sorted.
    public static let builtIn: [String] = [counter, echo, exec, fail, fanout, http, keyValue, work]

    /// Parses a comma-separated list of extra kind names (`MESH_EXTRA_KINDS`), each
    /// following the id rule.
    /// - Throws: ``MeshError`` `invalid_argument` naming the bad entry.
    public static func parseList(_ text: String) throws(MeshError) -> [String] {
        var names: [String] = []
        for part in text.split(separator: ",") {
            let name = part.trimmingCharacters(in: .whitespaces)
            if name.isEmpty { continue }
            guard Identifier.isValid(name) else {
                throw MeshError(.invalidArgument, "kind name \(String(reflecting: String(name.prefix(80)))) must match [a-z0-9][a-z0-9_-]{0,62}")
            }
            names.append(name)
        }
        return names
    }
}
