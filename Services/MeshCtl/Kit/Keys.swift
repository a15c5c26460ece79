import ArgumentParser
import Foundation
import LocalServers
import MeshCore

/// Where `meshctl` finds the gateway and its API key.
///
/// - gateway: `--gateway URL`, else `MESH_GATEWAY`, else the local mesh's (from
///   `<state-dir>/up.json`), else `http://127.0.0.1:8080`;
/// - key: `--api-key`, else `MESH_API_KEY`, else the local mesh's bootstrap admin key in
///   `<state-dir>/gateway-admin.key`.
struct GatewayConnectionOptions: ParsableArguments {
    @Option(name: .customLong("gateway"), help: "Gateway URL http://HOST:PORT (env MESH_GATEWAY; default: the local mesh's).")
    var gateway: String?

    @Option(name: .customLong("api-key"), help: "API key (env MESH_API_KEY; default: the local mesh's admin key).")
    var apiKey: String?

    @Option(name: .customLong("state-dir"), help: "State directory of a local mesh (meshctl up).")
    var stateDirectory: String = MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh"

    @Option(name: .customLong("timeout-ms"), help: "Give up on a request after this many ms.")
    var timeoutMs: Int = 30_000

    var resolvedGateway: String {
        gateway ?? MeshEnvironment.string("MESH_GATEWAY") ?? LocalMeshState.read(stateDirectory: stateDirectory)?.gatewayURL
            ?? "http://127.0.0.1:8080"
    }

    var resolvedKey: String? {
        if let apiKey { return apiKey }
        if let key = MeshEnvironment.string("MESH_API_KEY") { return key }
        return (try? String(contentsOfFile: LocalMeshState.keyPath(stateDirectory: stateDirectory), encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func validate() throws {
        guard (100...600_000).contains(timeoutMs) else { throw ValidationError("--timeout-ms must be in 100...600000") }
    }

    /// The gateway client these options name.
    var client: GatewayHTTP { GatewayHTTP(url: resolvedGateway, key: resolvedKey, timeoutMs: timeoutMs) }

    /// Sends a request to the gateway and returns the decoded JSON answer.
    /// - Throws: `CLIError` with the gateway's error code and message on a non-2xx answer.
    func call(_ method: String, _ path: String, json: Any? = nil) throws -> Any {
        try client.call(method, path, json: json)
    }
}

/// A blocking client of the gateway's HTTP API for `meshctl`: bearer key, JSON in and out,
/// the gateway's `{"error":{…}}` answers turned into `CLIError`s naming the code.
struct GatewayHTTP {
    var url: String
    var key: String?
    var timeoutMs: Int

    /// Sends a request and returns the raw answer of a 2xx status.
    /// - Throws: `CLIError` with the gateway's error code and message on a non-2xx answer.
    func raw(_ method: String, _ path: String, body: [UInt8] = [], contentType: String? = nil) throws -> LocalHTTP.Response {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host else {
            throw CLIError("the gateway URL must be http://HOST:PORT, got \(url)")
        }
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        let base = components.percentEncodedPath.hasSuffix("/") ? String(components.percentEncodedPath.dropLast()) : components.percentEncodedPath
        let response: LocalHTTP.Response
        do {
            response = try LocalHTTP.request(
                method, host: host, port: components.port ?? 80, path: base + path, headers: headers, body: body, timeoutMs: timeoutMs)
        } catch {
            throw CLIError("cannot reach the gateway at \(url): \(error)")
        }
        guard (200..<300).contains(response.status) else {
            let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            if let error = object?["error"] as? [String: Any] {
                throw CLIError("\(error["code"] as? String ?? "error"): \(error["message"] as? String ?? "") (HTTP \(response.status))")
            }
            throw CLIError("the gateway answered HTTP \(response.status)")
        }
        return response
    }

    /// Sends a request with an optional JSON body and returns the decoded JSON answer.
    func call(_ method: String, _ path: String, json: Any? = nil) throws -> Any {
        var body: [UInt8] = []
        if let json { body = Array(try JSONSerialization.data(withJSONObject: json)) }
        let response = try raw(method, path, body: body, contentType: json == nil ? nil : "application/json")
        return (try? JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed])) ?? [:]
    }

    /// `value` percent-encoded for a query string or a path segment.
    static func encode(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? value
    }
}

/// `--gateway` / `--api-key` for commands that talk to NATS by default: when a gateway is
/// named (flag or `MESH_GATEWAY`), they go through its HTTP API instead, with the key from
/// `--api-key`, `MESH_API_KEY` or the local mesh's admin key.
struct ThroughGatewayOptions: ParsableArguments {
    @Option(name: .customLong("gateway"), help: "Go through the gateway at this URL, http://HOST:PORT (env MESH_GATEWAY).")
    var gateway: String?

    @Option(name: .customLong("api-key"), help: "API key for the gateway (env MESH_API_KEY; default: the local mesh's admin key).")
    var apiKey: String?

    /// The gateway client, when a gateway was named.
    func client(stateDirectory: String, timeoutMs: Int) -> GatewayHTTP? {
        guard let url = gateway ?? MeshEnvironment.string("MESH_GATEWAY") else { return nil }
        let key = apiKey ?? MeshEnvironment.string("MESH_API_KEY")
            ?? (try? String(contentsOfFile: LocalMeshState.keyPath(stateDirectory: stateDirectory), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
        return GatewayHTTP(url: url, key: key, timeoutMs: max(timeoutMs, 1_000) + 1_000)
    }
}

/// `meshctl keys`: API keys of the gateway (admin role needed), through the gateway's
/// `/api/v1/keys` endpoints.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the gateway's API keys (needs an admin key).", subcommands: [Create.self, List.self, Revoke.self])

    /// `meshctl keys create --role ROLE [--name NAME]`: prints the new secret once.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key; its secret is printed once and never again.")

        @OptionGroup var connection: GatewayConnectionOptions

        @Option(name: .customLong("role"), help: "viewer | operator | admin")
        var role: String

        @Option(name: .customLong("name"), help: "A name for the key (who or what uses it).")
        var name: String?

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        func validate() throws {
            guard ["viewer", "operator", "admin"].contains(role) else { throw ValidationError("--role must be viewer, operator or admin") }
        }

        func run() async throws {
            var body: [String: Any] = ["role": role]
            if let name { body["name"] = name }
            let created = try connection.call("POST", "/api/v1/keys", json: body) as? [String: Any] ?? [:]
            switch output {
            case .json: printJSON(created)
            case .table:
                say("created key \(created["id"] as? String ?? "?") (\(created["name"] as? String ?? ""), role \(created["role"] as? String ?? ""))")
                say("secret (shown once, store it now): \(created["secret"] as? String ?? "?")")
            }
        }
    }

    /// `meshctl keys ls`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List API keys (never their secrets).")

        @OptionGroup var connection: GatewayConnectionOptions

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        func run() async throws {
            let items = (try connection.call("GET", "/api/v1/keys") as? [String: Any])?["items"] as? [[String: Any]] ?? []
            switch output {
            case .json: printJSON(items)
            case .table:
                var rows = [["ID", "NAME", "ROLE", "CREATED", "REVOKED"]]
                for item in items {
                    rows.append([
                        item["id"] as? String ?? "", item["name"] as? String ?? "", item["role"] as? String ?? "",
                        item["created_at"] as? String ?? "", item["revoked_at"] as? String ?? "-",
                    ])
                }
                say(Table.render(rows))
            }
        }
    }

    /// `meshctl keys revoke ID`.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an API key.")

        @OptionGroup var connection: GatewayConnectionOptions

        @Argument(help: "The key's id (from `meshctl keys ls`).")
        var id: String

        func validate() throws {
            guard Identifier.isValid(id) else { throw ValidationError("not a key id: \(id)") }
        }

        func run() async throws {
            _ = try connection.call("DELETE", "/api/v1/keys/\(id)")
            say("revoked \(id)")
        }
    }
}
