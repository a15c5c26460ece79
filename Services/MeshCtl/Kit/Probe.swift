import ArgumentParser
import Foundation
import LocalServers

/// `meshctl probe URL`: an HTTP GET for container health checks (the runtime image has no
/// curl): exit 0 on a 2xx answer, 1 otherwise.
struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "HTTP GET a URL (http://host:port/path); exit 0 on 2xx.")

    @Argument(help: "http://HOST:PORT/PATH")
    var url: String

    @Option(name: .customLong("timeout-ms"), help: "Give up after this many ms.")
    var timeoutMs: Int = 2000

    func run() async throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host else {
            throw ValidationError("URL must be http://HOST[:PORT]/PATH")
        }
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        let status: Int
        do {
            status = try LocalHTTP.get(host: host, port: components.port ?? 80, path: path, timeoutMs: timeoutMs, maxBytes: 64 * 1024).status
        } catch {
            throw CLIError("\(error)")
        }
        say(String(status))
        if !(200..<300).contains(status) { throw ExitCode(1) }
    }
}
