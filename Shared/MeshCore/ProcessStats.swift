import Foundation

/// Resource use of a process, read from `/proc/<pid>` (Linux); zeros elsewhere.
public struct ProcessStats: Sendable {
    /// Resident set size in bytes.
    public var residentBytes: UInt64 = 0
    /// User + system CPU time consumed since start, in seconds.
    public var cpuSeconds: Double = 0
    /// Open file descriptors.
    public var openFileDescriptors: Int = 0
    /// Threads.
    public var threads: Int = 0
    /// The memory this process may use: its cgroup's limit (v2 `memory.max`, v1
    /// `memory.limit_in_bytes`) when one is set and below the host's memory, else the
    /// host's total memory (`MemTotal`); 0 when unknown.
    public var memoryLimitBytes: UInt64 = 0

    /// Reads this process's current figures.
    public static func current() -> ProcessStats {
        var stats = read(process: "self") ?? ProcessStats()
        stats.memoryLimitBytes = memoryLimit
        return stats
    }

    /// Reads another process's CPU time, RSS, threads and open descriptors (not its memory
    /// limit); nil when it cannot be read (gone, not ours, not Linux).
    public static func read(pid: Int32) -> ProcessStats? { read(process: String(pid)) }

    private static func read(process: String) -> ProcessStats? {
        #if os(Linux)
        guard let statm = try? String(contentsOfFile: "/proc/\(process)/statm", encoding: .utf8),
            let stat = try? String(contentsOfFile: "/proc/\(process)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")")
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let memory = statm.split(separator: " ")
        // Fields after "comm)": state is field 3; utime 14, stime 15, threads 20 (1-based).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard memory.count > 1, let pages = UInt64(memory[1]), fields.count > 18, let user = Double(fields[11]),
            let system = Double(fields[12]), ticks > 0
        else { return nil }
        var stats = ProcessStats()
        stats.residentBytes = pages * pageSize
        stats.cpuSeconds = (user + system) / ticks
        stats.threads = Int(fields[17]) ?? 0
        stats.openFileDescriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process)/fd").count) ?? 0
        return stats
        #else
        return nil
        #endif
    }

    /// Read once: limits do not change while the process runs.
    private static let memoryLimit: UInt64 = {
        #if os(Linux)
        func number(_ path: String) -> UInt64? {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        var host: UInt64 = 0
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") })
        {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = UInt64(fields[1]) { host = kib * 1024 }
        }
        let cgroup = number("/sys/fs/cgroup/memory.max") ?? number("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        if let cgroup, cgroup > 0, host == 0 || cgroup < host { return cgroup }
        return host
        #else
        return 0
        #endif
    }()
}
