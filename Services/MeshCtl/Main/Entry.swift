import ArgumentParser
import Foundation
import Logging
import MeshCtlKit

@main
struct Entry {
    static func main() async {
        // Line-buffered stdout, so progress shows up promptly also when redirected to a file.
        setvbuf(stdout, nil, _IOLBF, 0)
        // The CLI's own diagnostics go to stderr, warnings and above; output goes to stdout.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        await MeshCtl.main()
    }
}
