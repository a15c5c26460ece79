import Foundation

/// Where the built executables are: `$MESH_BIN_DIR`, else the directory of the running
/// test binary (SwiftPM puts the test bundle next to the package's executables).
public enum MeshBinaries {
    /// The build's binary directory.
    public static var directory: String {
        if let explicit = ProcessInfo.processInfo.environment["MESH_BIN_DIR"], !explicit.isEmpty { return explicit }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // On Linux the test runner lives inside `<bin>/<Package>PackageTests.xctest` when it is a bundle.
        if directory.pathExtension == "xctest" { directory.deleteLastPathComponent() }
        return directory.path
    }

    /// The path of executable `name`.
    /// - Throws: `HarnessError` when it has not been built.
    public static func path(_ name: String) throws -> String {
        let path = "\(directory)/\(name)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(name) not built in \(directory) (run `swift build` first)")
        }
        return path
    }
}
