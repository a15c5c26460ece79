import ArgumentParser
import Foundation
import MeshCore
import Nats
import NatsMicro
import Logging

/// `meshctl status`: every running mesh process found by NATS micro discovery.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the running services (NATS micro discovery) with their statistics.")

    @Option(name: .customLong("nats-url"), help: "NATS URL; default: the local mesh in --state-dir, else MESH_NATS_URL, else nats://127.0.0.1:4222.")
    var natsURL: String?

    @Option(name: .customLong("state-dir"), help: "State directory of a local mesh (meshctl up).")
    var stateDirectory: String = MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh"

    @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
    var output: OutputFormat = .table

    @Option(name: .customLong("wait-ms"), help: "How long to collect replies, in ms.")
    var waitMs: Int = 500

    func validate() throws {
        guard (50...30_000).contains(waitMs) else { throw ValidationError("--wait-ms must be in 50...30000") }
    }

    func run() async throws {
        let url = natsURL ?? LocalMeshState.read(stateDirectory: stateDirectory)?.natsURL ?? MeshEnvironment.string("MESH_NATS_URL")
            ?? "nats://127.0.0.1:4222"
        let connection = try await CLIConnection.connect(url)
        defer { connection.close() }
        let stats = try await MicroDiscovery.stats(connection, window: .milliseconds(waitMs))
            .filter { ServiceName(rawValue: $0.name) != nil }
            .sorted { ($0.name, $0.id) < ($1.name, $1.id) }
        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            say(String(decoding: try encoder.encode(stats), as: UTF8.self))
        case .table:
            let now = Date()
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            var rows = [["SERVICE", "ID", "VERSION", "UP", "ENDPOINTS", "REQUESTS", "ERRORS"]]
            for entry in stats {
                let uptime = formatter.date(from: entry.started).map { Table.duration(now.timeIntervalSince($0)) } ?? "?"
                rows.append([
                    entry.name, entry.id, entry.version, uptime, String(entry.endpoints.count),
                    String(entry.endpoints.reduce(0) { $0 + $1.numRequests }), String(entry.endpoints.reduce(0) { $0 + $1.numErrors }),
                ])
            }
            say(Table.render(rows))
            let missing = ServiceName.allCases.filter { name in !stats.contains { $0.name == name.rawValue } }
            if stats.isEmpty {
                say("no mesh service answered on \(url)")
            } else if !missing.isEmpty {
                say("not running: \(missing.map(\.rawValue).joined(separator: ", "))")
            }
        }
        if stats.isEmpty { throw ExitCode(3) }
    }
}

/// Output formats of listing commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Fixed-width text tables.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func duration(_ seconds: TimeInterval) -> String {
        let total = Int(max(0, seconds))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m\(total % 60)s" }
        return "\(total / 3600)h\(total % 3600 / 60)m"
    }
}

/// The CLI's NATS connection: fails fast (no endless reconnect) with a readable error.
enum CLIConnection {
    /// - Parameter sendAsap: flush every publish at once (latency; the default) or let the
    ///   client batch writes (throughput of a bulk publisher).
    static func connect(_ url: String, sendAsap: Bool = true) async throws -> NatsConnection {
        var options = NatsOptions()
        options.sendAsap = sendAsap
        options.servers = url.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        options.name = "meshctl"
        options.maxReconnect = 0
        options.connectTimeout = .seconds(2)
        options.user = MeshEnvironment.string("MESH_NATS_USER")
        options.password = MeshEnvironment.string("MESH_NATS_PASSWORD")
        options.token = MeshEnvironment.string("MESH_NATS_TOKEN")
        do {
            return try await NatsConnection.connect(options, logger: Logger(label: "meshctl"))
        } catch {
            throw CLIError("cannot connect to NATS at \(url): \(error)")
        }
    }
}

/// An error the CLI prints as one line and exits non-zero on.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
