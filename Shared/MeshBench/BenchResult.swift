public import Foundation
public import MeshCore

/// Percentiles of a latency distribution, in microseconds (fractional), read from a
/// ``LogLinearHistogram`` of nanoseconds: each is the upper bound of its bucket clamped to
/// the observed min/max, so within ~3 % above the true value at the default precision.
public struct LatencySummary: Codable, Sendable, Hashable {
    public var count: UInt64
    public var minMicros: Double
    public var meanMicros: Double
    public var p50Micros: Double
    public var p90Micros: Double
    public var p95Micros: Double
    public var p99Micros: Double
    public var p999Micros: Double
    public var maxMicros: Double

    /// Reads the percentiles of `histogram` (values in nanoseconds).
    public init(_ histogram: LogLinearHistogram) {
        func micros(_ nanos: UInt64) -> Double { Double(nanos) / 1_000 }
        count = histogram.count
        minMicros = micros(histogram.min)
        meanMicros = histogram.mean / 1_000
        p50Micros = micros(histogram.percentile(0.50))
        p90Micros = micros(histogram.percentile(0.90))
        p95Micros = micros(histogram.percentile(0.95))
        p99Micros = micros(histogram.percentile(0.99))
        p999Micros = micros(histogram.percentile(0.999))
        maxMicros = micros(histogram.max)
    }
}

/// A histogram in the result file: the wire form of ``LogLinearHistogram`` (values in ns).
public struct HistogramData: Codable, Sendable, Hashable {
    public var precisionBits: Int
    public var firstBucket: Int
    public var counts: [UInt64]
    public var sum: UInt64
    public var min: UInt64
    public var max: UInt64

    public init(_ histogram: LogLinearHistogram) {
        precisionBits = histogram.precisionBits
        let sparse = histogram.sparseCounts
        firstBucket = sparse.firstBucket
        counts = Array(sparse.counts)
        sum = histogram.sum
        min = histogram.min
        max = histogram.max
    }

    /// The histogram again.
    /// - Throws: ``MeshError`` `invalid_argument` for an impossible precision or bucket range.
    public func histogram() throws(MeshError) -> LogLinearHistogram {
        try LogLinearHistogram(precisionBits: precisionBits, firstBucket: firstBucket, counts: counts, sum: sum, min: min, max: max)
    }
}

/// One second of a run.
public struct TimelinePoint: Codable, Sendable, Hashable {
    /// Seconds since the measured window began (negative: warm-up).
    public var second: Int
    /// The profile's target rate at the start of that second; nil in a closed loop.
    public var targetRate: Double?
    public var operations: Int
    public var errors: Int
    public var p50Micros: Double
    public var p99Micros: Double
    public var maxMicros: Double

    public init(second: Int, targetRate: Double?, operations: Int, errors: Int, p50Micros: Double, p99Micros: Double, maxMicros: Double) {
        self.second = second
        self.targetRate = targetRate
        self.operations = operations
        self.errors = errors
        self.p50Micros = p50Micros
        self.p99Micros = p99Micros
        self.maxMicros = maxMicros
    }
}

/// CPU and memory of one process of the mesh over the measured window.
public struct ProcessUsage: Codable, Sendable, Hashable {
    public var name: String
    public var pid: Int32
    /// CPU time used during the window ÷ its wall time × 100 (100 = one core busy).
    public var cpuPercent: Double
    /// Resident set size at the end of the window, bytes.
    public var rssBytes: UInt64
    /// Largest resident set size sampled during the window, bytes.
    public var rssPeakBytes: UInt64
    /// RSS at the end minus RSS at the start, bytes (may be negative).
    public var rssDeltaBytes: Int64

    public init(name: String, pid: Int32, cpuPercent: Double, rssBytes: UInt64, rssPeakBytes: UInt64, rssDeltaBytes: Int64) {
        self.name = name
        self.pid = pid
        self.cpuPercent = cpuPercent
        self.rssBytes = rssBytes
        self.rssPeakBytes = rssPeakBytes
        self.rssDeltaBytes = rssDeltaBytes
    }
}

/// CPU and memory of the mesh's processes during a run. All zeros (and `sampled` false)
/// when the processes are not known — a mesh reached only by its NATS URL.
public struct ResourceUsage: Codable, Sendable, Hashable {
    /// Whether process figures were read (`/proc/<pid>` of the local mesh's processes).
    public var sampled: Bool
    /// Sum over the processes of ``ProcessUsage/cpuPercent``.
    public var cpuPercent: Double
    /// Sum of the processes' RSS at the end, bytes.
    public var rssBytes: UInt64
    /// Total RSS growth extrapolated to an hour, bytes/h (end − start over the window).
    public var rssGrowthBytesPerHour: Double
    public var processes: [ProcessUsage]

    public init(processes: [ProcessUsage], windowSeconds: Double) {
        sampled = !processes.isEmpty
        cpuPercent = processes.reduce(0) { $0 + $1.cpuPercent }
        rssBytes = processes.reduce(0) { $0 + $1.rssBytes }
        let delta = processes.reduce(Int64(0)) { $0 + $1.rssDeltaBytes }
        rssGrowthBytesPerHour = windowSeconds > 0 ? Double(delta) / windowSeconds * 3_600 : 0
        self.processes = processes
    }

    /// Nothing sampled.
    public static let none = ResourceUsage(processes: [], windowSeconds: 0)
}

/// The measurement of one scenario (or one variant of it) in one run.
public struct BenchResult: Codable, Sendable, Hashable {
    /// Unique key within a document (per run): `scenario` or `scenario/variant`, e.g.
    /// `registry-lookup/cache`, `events/100`. SLO targets and baselines refer to it.
    public var name: String
    /// The scenario: actions, agent-create, lifecycle, registry-lookup, events, tasks,
    /// gateway-http, nats-raw, failover.
    public var scenario: String
    /// Which run of the document this is (1-based; `--runs N` repeats the suite).
    public var run: Int
    /// Scenario settings (agents, payload bytes, subscribers, …) as text.
    public var parameters: [String: String]
    /// The load profile, textual form (see ``LoadProfile``); the closed-loop figures of
    /// reference runs say `max:N`.
    public var profile: String
    public var startedAt: Date
    public var warmupSeconds: Double
    /// Length of the measured window (after warm-up), seconds.
    public var durationSeconds: Double
    /// Operations completed in the window (successes and errors).
    public var operations: Int
    public var errors: Int
    /// errors ÷ operations (0 when none ran).
    public var errorRate: Double
    /// Successful operations per second over the window.
    public var throughput: Double
    /// Latency of successful operations in the window; open-loop profiles measure from the
    /// intended send time.
    public var latency: LatencySummary
    public var histogram: HistogramData
    public var timeline: [TimelinePoint]
    public var resources: ResourceUsage
    /// Free-form remarks (what the latency measures, warnings such as dropped messages).
    public var notes: [String]

    public init(
        name: String, scenario: String, run: Int = 1, parameters: [String: String], profile: String, startedAt: Date, warmupSeconds: Double,
        durationSeconds: Double, operations: Int, errors: Int, histogram: LogLinearHistogram, timeline: [TimelinePoint],
        resources: ResourceUsage = .none, notes: [String] = []
    ) {
        self.name = name
        self.scenario = scenario
        self.run = run
        self.parameters = parameters
        self.profile = profile
        self.startedAt = startedAt
        self.warmupSeconds = warmupSeconds
        self.durationSeconds = durationSeconds
        self.operations = operations
        self.errors = errors
        errorRate = operations > 0 ? Double(errors) / Double(operations) : 0
        throughput = durationSeconds > 0 ? Double(operations - errors) / durationSeconds : 0
        latency = LatencySummary(histogram)
        self.histogram = HistogramData(histogram)
        self.timeline = timeline
        self.resources = resources
        self.notes = notes
    }

    /// A metric of this result by its SLO/baseline name (see ``BenchMetric``).
    public func value(of metric: BenchMetric) -> Double {
        switch metric {
        case .p50: latency.p50Micros / 1_000
        case .p90: latency.p90Micros / 1_000
        case .p95: latency.p95Micros / 1_000
        case .p99: latency.p99Micros / 1_000
        case .p999: latency.p999Micros / 1_000
        case .max: latency.maxMicros / 1_000
        case .throughput: throughput
        case .errorRate: errorRate
        case .cpuPercent: resources.cpuPercent
        case .rssMB: Double(resources.rssBytes) / 1_048_576
        case .memoryGrowthMBPerHour: resources.rssGrowthBytesPerHour / 1_048_576
        }
    }
}

/// The metrics SLO targets and regression checks name.
public enum BenchMetric: String, Codable, Sendable, CaseIterable {
    case p50 = "p50_ms", p90 = "p90_ms", p95 = "p95_ms", p99 = "p99_ms", p999 = "p999_ms", max = "max_ms"
    case throughput = "throughput"
    case errorRate = "error_rate"
    case cpuPercent = "cpu_percent"
    case rssMB = "rss_mb"
    case memoryGrowthMBPerHour = "memory_growth_mb_per_hour"

    /// Whether a larger value is better (throughput) or worse (everything else).
    public var higherIsBetter: Bool { self == .throughput }
}

/// The machine a document was measured on.
public struct MachineInfo: Codable, Sendable, Hashable {
    public var cores: Int
    public var memoryBytes: UInt64
    /// Operating system name and version.
    public var os: String
    public var hostname: String

    public init(cores: Int, memoryBytes: UInt64, os: String, hostname: String) {
        self.cores = cores
        self.memoryBytes = memoryBytes
        self.os = os
        self.hostname = hostname
    }

    /// This machine, from `ProcessInfo`.
    public static var current: MachineInfo {
        let info = ProcessInfo.processInfo
        return MachineInfo(cores: info.activeProcessorCount, memoryBytes: info.physicalMemory, os: info.operatingSystemVersionString, hostname: info.hostName)
    }
}

/// A scenario that failed to run (an error, not a slow figure).
public struct BenchFailure: Codable, Sendable, Hashable {
    public var scenario: String
    public var run: Int
    public var error: String

    public init(scenario: String, run: Int, error: String) {
        self.scenario = scenario
        self.run = run
        self.error = error
    }
}

/// A mesh ÷ raw reference ratio measured in the same document.
public struct BenchRatio: Codable, Sendable, Hashable {
    /// e.g. `actions/nats-raw throughput`.
    public var name: String
    public var numerator: String
    public var denominator: String
    public var metric: BenchMetric
    public var value: Double

    public init(name: String, numerator: String, denominator: String, metric: BenchMetric, value: Double) {
        self.name = name
        self.numerator = numerator
        self.denominator = denominator
        self.metric = metric
        self.value = value
    }

    /// The rate of `bench all`'s constant-rate `actions` run and of its raw reference
    /// `nats-raw/request-reply-10k`: the load of the actions latency goal.
    public static let constantActionRate = 10_000

    /// The mesh ÷ raw ratios of `results` (medians over runs), for those whose two sides
    /// are present: actions throughput (closed-loop runs only) and, at
    /// ``constantActionRate``, p99; tasks throughput; registry get p99.
    public static func standard(_ results: [BenchResult]) -> [BenchRatio] {
        func median(_ name: String, _ metric: BenchMetric, profile: (String) -> Bool) -> Double? {
            Statistics.median(results.filter { $0.name == name && profile($0.profile) }.map { $0.value(of: metric) })
        }
        var ratios: [BenchRatio] = []
        /// `profile` selects the numerator's runs.
        func add(_ label: String, _ numerators: [String], _ denominator: String, _ metric: BenchMetric, profile: (String) -> Bool = { _ in true }) {
            guard let numerator = numerators.first(where: { median($0, metric, profile: profile) != nil }),
                let top = median(numerator, metric, profile: profile), let bottom = median(denominator, metric, profile: { _ in true }), bottom > 0
            else { return }
            ratios.append(BenchRatio(name: label, numerator: numerator, denominator: denominator, metric: metric, value: top / bottom))
        }
        add("actions ÷ raw cnats request/reply (throughput)", ["actions/max", "actions"], "nats-raw/request-reply", .throughput) { $0.hasPrefix("max") }
        add("tasks ÷ raw JetStream publish → consume + ack (throughput)", ["tasks"], "nats-raw/jetstream", .throughput)
        add("registry get over NATS ÷ raw cnats request/reply, 1 in flight (p99)", ["registry-lookup/nats"], "nats-raw/request-reply-1", .p99)
        let rate = constantActionRate
        add("actions ÷ raw cnats request/reply, both at a constant \(rate)/s (p99)", ["actions"], "nats-raw/request-reply-\(rate / 1_000)k", .p99) {
            $0 == LoadProfile.constant(rate: Double(rate)).description
        }
        return ratios
    }
}

/// A result file: what one `meshctl bench …` invocation measured. Its JSON Schema is
/// `Deploy/bench/result.schema.json`; ``schemaVersion`` changes when a field's meaning does.
public struct BenchDocument: Codable, Sendable, Hashable {
    public static let currentSchemaVersion = 1
    /// Largest result file accepted, bytes.
    public static let maxFileBytes = 64 << 20

    public var schemaVersion: Int
    public var createdAt: Date
    /// `git rev-parse HEAD` of the source tree, or "unknown".
    public var gitRevision: String
    public var machine: MachineInfo
    /// Where the mesh was: "local" (started by the run) or its NATS URL.
    public var target: String
    public var results: [BenchResult]
    public var ratios: [BenchRatio]
    /// Scenarios that could not run to the end (absent when every one did); their results
    /// are missing from ``results``.
    public var failures: [BenchFailure]?

    public init(
        createdAt: Date, gitRevision: String, machine: MachineInfo, target: String, results: [BenchResult], ratios: [BenchRatio] = [],
        failures: [BenchFailure] = []
    ) {
        self.failures = failures.isEmpty ? nil : failures
        schemaVersion = Self.currentSchemaVersion
        self.createdAt = createdAt
        self.gitRevision = gitRevision
        self.machine = machine
        self.target = target
        self.results = results
        self.ratios = ratios
    }

    /// Pretty, sorted-key JSON with ISO 8601 dates.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(self)
    }

    /// Decodes a result file.
    /// - Throws: ``MeshError`` `invalid_argument` (not JSON, wrong shape, unsupported schema
    ///   version) or `too_large`.
    public static func decode(_ data: Data, source: String) throws(MeshError) -> BenchDocument {
        guard data.count <= maxFileBytes else { throw MeshError(.tooLarge, "\(source): larger than \(maxFileBytes >> 20) MiB") }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let document: BenchDocument
        do {
            document = try decoder.decode(BenchDocument.self, from: data)
        } catch let error as DecodingError {
            throw MeshError(.invalidArgument, "\(source) is not a bench result file: \(Self.describe(error))")
        } catch {
            throw MeshError(.invalidArgument, "\(source) is not a bench result file: \(error)")
        }
        guard document.schemaVersion == currentSchemaVersion else {
            throw MeshError(.invalidArgument, "\(source): schema version \(document.schemaVersion) is not supported (expected \(currentSchemaVersion))")
        }
        return document
    }

    /// Reads and decodes a result file.
    /// - Throws: ``MeshError`` `not_found` when it cannot be read, else as ``decode(_:source:)``.
    public static func read(path: String) throws(MeshError) -> BenchDocument {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw MeshError(.notFound, "cannot read \(path)")
        }
        if let size = attributes[.size] as? Int, size > maxFileBytes { throw MeshError(.tooLarge, "\(path): larger than \(maxFileBytes >> 20) MiB") }
        guard let data = FileManager.default.contents(atPath: path) else { throw MeshError(.notFound, "cannot read \(path)") }
        return try decode(data, source: path)
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "" : " at \(keys)"
        }
        switch error {
        case .dataCorrupted(let context): return "\(context.debugDescription)\(path(context))"
        case .keyNotFound(let key, let context): return "missing field '\(key.stringValue)'\(path(context))"
        case .typeMismatch(_, let context): return "wrong type\(path(context)): \(context.debugDescription)"
        case .valueNotFound(_, let context): return "missing value\(path(context))"
        @unknown default: return "\(error)"
        }
    }
}
