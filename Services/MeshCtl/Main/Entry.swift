import ArgumentParser
import Logging
import MeshCtlKit

@main
struct Entry {
    static func main() async {
        // The CLI's own diagnostics go to stderr, warnings and above; output goes to stdout.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        await MeshCtl.main()
    }
}
