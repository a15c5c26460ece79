import ArgumentParser
import Foundation
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Nats
import Yams

/// `meshctl agents`: create, list, show and remove agents through the registry, over NATS.
///
/// ```
/// meshctl agents create -f spec.json|spec.yaml [--upsert]
/// meshctl agents ls [--selector 'team=search,tier in (gold,silver)'] [--node N] [--status running] [-o json]
/// meshctl agents get ID [-o json]
/// meshctl agents rm ID [--revision R]
/// ```
struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, show and remove agents (through mesh-registry over NATS, or the gateway with --gateway).",
        subcommands: [Create.self, List.self, Get.self, Remove.self])

    /// Where the registry is: NATS URL (default: the local mesh in --state-dir, as `meshctl status`), prefix, timeout.
    struct Connection: ParsableArguments {
        @Option(name: .customLong("nats-url"), help: "NATS URL; default: the local mesh in --state-dir, else MESH_NATS_URL, else nats://127.0.0.1:4222.")
        var natsURL: String?

        @Option(name: .customLong("state-dir"), help: "State directory of a local mesh (meshctl up).")
        var stateDirectory: String = MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh"

        @Option(name: .customLong("prefix"), help: "Subject prefix of the cluster (env MESH_PREFIX).")
        var prefix: String = MeshEnvironment.string("MESH_PREFIX") ?? Subjects.defaultPrefix

        @Option(name: .customLong("timeout-ms"), help: "How long to wait for the registry, in ms.")
        var timeoutMs: Int = 5_000

        @OptionGroup var through: ThroughGatewayOptions

        /// The gateway to go through instead of NATS, when one is named.
        var gateway: GatewayHTTP? { through.client(stateDirectory: stateDirectory, timeoutMs: timeoutMs) }

        func validate() throws {
            guard (100...120_000).contains(timeoutMs) else { throw ValidationError("--timeout-ms must be in 100...120000") }
            do { _ = try Subjects(prefix: prefix) } catch { throw ValidationError(error.message) }
        }

        /// Connects and builds a registry client (the shard count comes from the cluster).
        func client() async throws -> (RegistryClient, NatsConnection, ShardMap) {
            let url = natsURL ?? LocalMeshState.read(stateDirectory: stateDirectory)?.natsURL ?? MeshEnvironment.string("MESH_NATS_URL")
                ?? "nats://127.0.0.1:4222"
            let connection = try await CLIConnection.connect(url)
            let subjects = try Subjects(prefix: prefix)
            do {
                let shardMap = try ClusterResources.readShardMap(try connection.jetStream(), subjects: subjects)
                return (RegistryClient(connection: connection, subjects: subjects, shardMap: shardMap, timeout: .milliseconds(timeoutMs)), connection, shardMap)
            } catch {
                connection.close()
                if let error = error as? MeshError { throw CLIError(error.message) }
                throw CLIError("cannot read the cluster on \(url): \(error)")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create agents from a spec file (JSON or YAML; one spec or a list).",
            discussion: """
                The spec has snake_case keys: id and kind (required), config (a JSON object), labels, restart \
                (permanent|transient|temporary), group, group_strategy (one_for_one|one_for_all|rest_for_one), \
                max_restarts, period_seconds, mailbox_capacity, action_timeout_ms. See the README.
                """)

        @Option(name: [.customShort("f"), .customLong("file")], help: "Spec file: .json, .yaml/.yml, or - for JSON on stdin.")
        var file: String

        @Flag(name: .customLong("upsert"), help: "Update agents that exist instead of failing.")
        var upsert = false

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        @OptionGroup var connection: Connection

        func run() async throws {
            let specs = try SpecFile.read(file)
            if let gateway = connection.gateway { return try createThrough(gateway, specs) }
            let (registry, nats, shardMap) = try await connection.client()
            defer { nats.close() }
            // Up to `inFlight` requests at once, results in file order; one at a time when an
            // id repeats, so the later spec of it is the one that wins, as listed.
            let inFlight = Set(specs.map(\.id)).count == specs.count ? Self.inFlight : 1
            let upsert = self.upsert
            let outcomes = await withTaskGroup(of: (Int, Result<AgentRecord, MeshError>).self) { group in
                var outcomes = [Result<AgentRecord, MeshError>?](repeating: nil, count: specs.count)
                for (index, spec) in specs.enumerated() {
                    if index >= inFlight, let (done, outcome) = await group.next() { outcomes[done] = outcome }
                    group.addTask {
                        do throws(MeshError) {
                            return (index, .success(upsert ? try await registry.upsert(spec) : try await registry.create(spec)))
                        } catch {
                            return (index, .failure(error))
                        }
                    }
                }
                for await (done, outcome) in group { outcomes[done] = outcome }
                return outcomes
            }
            var records: [AgentRecord] = []
            var failures: [String] = []
            for (spec, outcome) in zip(specs, outcomes) {
                switch outcome {
                case .success(let record): records.append(record)
                case .failure(let error): failures.append("\(spec.id.isEmpty ? "(no id)" : spec.id): \(error.code.rawValue): \(error.message)")
                case nil: failures.append("\(spec.id.isEmpty ? "(no id)" : spec.id): not sent")
                }
            }
            switch output {
            case .json: say(AgentSpecDocument.text(records.map { AgentSpecDocument.object(record: $0, shardMap: shardMap) }))
            case .table:
                for record in records { say("agent \(record.spec.id) \(record.spec.generation == 1 ? "created" : "updated") (generation \(record.spec.generation), revision \(record.revision))") }
            }
            if !failures.isEmpty { throw CLIError(failures.joined(separator: "\n")) }
        }

        /// Registry requests in flight at once (over NATS).
        static let inFlight = 64

        private func createThrough(_ gateway: GatewayHTTP, _ specs: [AgentSpec]) throws {
            var records: [[String: Any]] = []
            var failures: [String] = []
            for spec in specs {
                let object = AgentSpecDocument.object(spec: spec)
                do {
                    do {
                        records.append(try gateway.call("POST", "/api/v1/agents", json: object) as? [String: Any] ?? [:])
                    } catch let error as CLIError where upsert && error.description.hasPrefix("already_exists") {
                        let path = "/api/v1/agents/\(GatewayHTTP.encode(spec.id))"
                        records.append(try gateway.call("PUT", path, json: object) as? [String: Any] ?? [:])
                    }
                } catch {
                    failures.append("\(spec.id.isEmpty ? "(no id)" : spec.id): \(error)")
                }
            }
            switch output {
            case .json: say(AgentSpecDocument.text(records))
            case .table:
                for record in records {
                    let generation = record["generation"] as? Int ?? 0
                    say("agent \(record["id"] as? String ?? "?") \(generation == 1 ? "created" : "updated") (generation \(generation), revision \(record["revision"] as? Int ?? 0))")
                }
            }
            if !failures.isEmpty { throw CLIError(failures.joined(separator: "\n")) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List agents, sorted by id.")

        @Option(name: [.customShort("l"), .customLong("selector")], help: "Label selector: k=v, k!=v, k, !k, k in (a,b), k notin (a,b); comma = and.")
        var selector: String = ""

        @Option(name: .customLong("node"), help: "Only agents placed on this node.")
        var node: String?

        @Option(name: .customLong("status"), help: "Only agents in this status (pending, starting, running, stopping, stopped, failed, restarting).")
        var status: String?

        @Option(name: .customLong("limit"), help: "Most agents shown (pages through the registry).")
        var limit: Int = 10_000

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        @OptionGroup var connection: Connection

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
            do { _ = try LabelSelector(selector) } catch { throw ValidationError(error.message) }
            if let status, AgentSpecDocument.status(named: status) == nil {
                throw ValidationError("--status must be one of pending, starting, running, stopping, stopped, failed, restarting")
            }
            if let node { do { _ = try NodeID(node) } catch { throw ValidationError(error.message) } }
        }

        func run() async throws {
            if let gateway = connection.gateway { return try listThrough(gateway) }
            let (registry, nats, shardMap) = try await connection.client()
            defer { nats.close() }
            let records: [AgentRecord]
            do {
                records = try await registry.listAll(
                    selector: selector, node: node, status: status.flatMap(AgentSpecDocument.status(named:)), maxRecords: limit)
            } catch {
                throw CLIError("\(error.code.rawValue): \(error.message)")
            }
            switch output {
            case .json: say(AgentSpecDocument.text(records.map { AgentSpecDocument.object(record: $0, shardMap: shardMap) }))
            case .table:
                var rows = [["ID", "KIND", "STATUS", "NODE", "SHARD", "GEN", "RESTARTS", "AGE", "LABELS"]]
                let now = Date().timeIntervalSince1970
                for record in records {
                    let shard = (try? AgentID(record.spec.id)).map { String(shardMap.shard(of: $0)) } ?? "?"
                    rows.append([
                        record.spec.id, record.spec.kind, AgentSpecDocument.name(record.status), record.placement?.nodeId ?? "-", shard,
                        String(record.spec.generation), String(record.restartCount),
                        Table.duration(now - Double(record.createdAtUnixMs) / 1000),
                        record.spec.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                    ])
                }
                say(Table.render(rows))
                if records.isEmpty { say("no agents") }
            }
        }

        private func listThrough(_ gateway: GatewayHTTP) throws {
            var records: [[String: Any]] = []
            var cursor: String?
            repeat {
                var query = "limit=\(min(1_000, max(1, limit - records.count)))&selector=\(GatewayHTTP.encode(selector))"
                if let node { query += "&node=\(GatewayHTTP.encode(node))" }
                if let status { query += "&status=\(GatewayHTTP.encode(status))" }
                if let cursor { query += "&cursor=\(GatewayHTTP.encode(cursor))" }
                let page = try gateway.call("GET", "/api/v1/agents?\(query)") as? [String: Any] ?? [:]
                records += page["items"] as? [[String: Any]] ?? []
                cursor = page["next_cursor"] as? String
            } while cursor != nil && records.count < limit
            switch output {
            case .json: say(AgentSpecDocument.text(records))
            case .table:
                var rows = [["ID", "KIND", "STATUS", "NODE", "SHARD", "GEN", "RESTARTS", "LABELS"]]
                for record in records {
                    let labels = (record["labels"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    rows.append([
                        record["id"] as? String ?? "", record["kind"] as? String ?? "", record["status"] as? String ?? "",
                        record["node"] as? String ?? "-", (record["shard"] as? Int).map(String.init) ?? "?",
                        String(record["generation"] as? Int ?? 0), String(record["restart_count"] as? Int ?? 0), labels.joined(separator: ","),
                    ])
                }
                say(Table.render(rows))
                if records.isEmpty { say("no agents") }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one agent.")

        @Argument(help: "Agent id.")
        var id: String

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        @OptionGroup var connection: Connection

        func validate() throws {
            do { _ = try AgentID(id) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            let object: [String: Any]
            if let gateway = connection.gateway {
                object = try gateway.call("GET", "/api/v1/agents/\(GatewayHTTP.encode(id))") as? [String: Any] ?? [:]
            } else {
                let (registry, nats, shardMap) = try await connection.client()
                defer { nats.close() }
                let record: AgentRecord
                do { record = try await registry.get(try AgentID(id)) } catch { throw CLIError("\(error.code.rawValue): \(error.message)") }
                object = AgentSpecDocument.object(record: record, shardMap: shardMap)
            }
            switch output {
            case .json: say(AgentSpecDocument.text(object))
            case .table:
                var rows = [["FIELD", "VALUE"]]
                for key in object.keys.sorted() {
                    let value = object[key]!
                    let text = value is String || value is Int ? "\(value)" : AgentSpecDocument.text(value).replacingOccurrences(of: "\n", with: "")
                    rows.append([key, text.replacingOccurrences(of: "  ", with: " ")])
                }
                say(Table.render(rows))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete an agent (its worker stops it and removes its state).")

        @Argument(help: "Agent id.")
        var id: String

        @Option(name: .customLong("revision"), help: "Delete only if the agent is still at this revision.")
        var revision: UInt64 = 0

        @OptionGroup var connection: Connection

        func validate() throws {
            do { _ = try AgentID(id) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            if let gateway = connection.gateway {
                let record = try gateway.call("DELETE", "/api/v1/agents/\(GatewayHTTP.encode(id))?revision=\(revision)") as? [String: Any] ?? [:]
                say("agent \(record["id"] as? String ?? id) deleted (was at revision \(record["revision"] as? Int ?? 0))")
                return
            }
            let (registry, nats, _) = try await connection.client()
            defer { nats.close() }
            do {
                let record = try await registry.delete(try AgentID(id), expectedRevision: revision)
                say("agent \(record.spec.id) deleted (was at revision \(record.revision))")
            } catch {
                throw CLIError("\(error.code.rawValue): \(error.message)")
            }
        }
    }
}

/// Reading spec files: JSON or YAML (by extension), one spec or a list of specs.
enum SpecFile {
    static let maxBytes = 16 << 20

    static func read(_ path: String) throws -> [AgentSpec] {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
            data = contents
        }
        guard data.count <= maxBytes else { throw CLIError("\(path) is larger than \(maxBytes) bytes") }
        let object: Any
        let lower = path.lowercased()
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") {
            do {
                guard let loaded = try Yams.load(yaml: String(decoding: data, as: UTF8.self)) else { throw CLIError("\(path) is empty") }
                object = loaded
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError("\(path) is not valid YAML: \(error)")
            }
        } else {
            do { object = try JSONSerialization.jsonObject(with: data, options: []) } catch {
                throw CLIError("\(path) is not valid JSON")
            }
        }
        let documents = (object as? [Any]) ?? [object]
        guard !documents.isEmpty else { throw CLIError("\(path) holds no spec") }
        return try documents.enumerated().map { index, document in
            do throws(MeshError) { return try AgentSpecDocument.spec(object: document) } catch {
                throw CLIError("\(path)\(documents.count > 1 ? " (spec \(index + 1))" : ""): \(error.message)")
            }
        }
    }
}
