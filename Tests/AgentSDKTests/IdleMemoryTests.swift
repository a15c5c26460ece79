import AgentSDK
import Foundation
import MeshCore
import Testing

/// Resident set size from `/proc/self/statm` (Linux), in bytes.
func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

@Suite("Idle agents are cheap")
struct IdleMemoryTests {
    /// Creates 100 000 echo cells and prints the resident memory per idle cell — before
    /// and after each cell handled one action (its mailbox buffer and task must be gone
    /// again). A figure for the release notes, not a pass/fail threshold.
    @Test func bytesPerIdleAgent() async throws {
        let count = 100_000
        let runtime = makeRuntime()
        let ids = (0..<count).map { agent("idle-agent-\($0)") }  // ids made first: they are the worker's data, not the cell's
        _ = try runtime.makeCell(id: agent("warm-up"), kind: "echo")
        guard let before = residentBytes() else {
            print("bytes per idle agent: /proc/self/statm unavailable, not measured")
            return
        }
        var cells: [AgentCell] = []
        cells.reserveCapacity(count)
        for id in ids { cells.append(try runtime.makeCell(id: id, kind: "echo")) }
        let afterCreate = residentBytes() ?? before
        let created = Double(afterCreate - before) / Double(count)

        // One action each, then idle again.
        let batch = 1_000
        for start in stride(from: 0, to: count, by: batch) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for cell in cells[start..<min(start + batch, count)] {
                    group.addTask { _ = try await cell.call("ping", payload: bytes("x")) }
                }
                try await group.waitForAll()
            }
        }
        #expect(cells.allSatisfy { $0.queuedCount == 0 && $0.phase == .running })
        let afterUse = residentBytes() ?? afterCreate
        let used = Double(afterUse - before) / Double(count)
        print(
            "bytes per idle agent (echo, \(count) cells, RSS from /proc/self/statm): \(Int(created.rounded())) after creation, "
                + "\(Int(used.rounded())) after one action each (design target ≤ 2048)")
        #expect(cells.count == count)
    }
}
