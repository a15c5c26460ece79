import Foundation
import Logging
import MeshCore
import MeshProto
import Store
import Metrics
import Nats
import ServiceLifecycle

/// Publishes this process's `MetricSnapshot` on `<prefix>.metrics.<service>.<instance>`
/// every `--snapshot-interval-ms`, after refreshing the resource gauges (CPU, RSS and the
/// memory limit, open file descriptors, NATS traffic, bytes not yet sent and requests in
/// flight, Postgres pool use).
struct SnapshotPublisher {
    let context: ServiceContext
    let observability: Observability

    var service: PeriodicService {
        let context = self.context
        let observability = self.observability
        let subject = context.subjects.metrics(service: context.descriptor.name, instance: context.instanceID)
        let gauges = ResourceGauges()
        let published = Counter(label: "mesh_metric_snapshots_published_total")
        return PeriodicService(
            every: .milliseconds(context.options.snapshotIntervalMs),
            onError: { error in context.logger.debug("metric snapshot not published", metadata: ["error": "\(error)"]) },
            tick: {
                gauges.refresh(context: context)
                let snapshot = Self.snapshot(context: context, values: observability.snapshots.snapshot())
                var headers = NatsHeaders()
                headers[MeshHeader.messageType] = MetricSnapshot.messageType.rawValue
                try context.nats.publish(subject, payload: snapshot.serializedBytes(), headers: headers)
                published.increment()
            })
    }

    static func snapshot(context: ServiceContext, values: MetricValues) -> MetricSnapshot {
        var snapshot = MetricSnapshot()
        snapshot.service = context.descriptor.name.rawValue
        snapshot.instance = context.instanceID.rawValue
        snapshot.timestampUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        snapshot.processStartedAtUnixMs = Int64(context.startedAt.timeIntervalSince1970 * 1000)
        snapshot.counters = values.counters.map { MetricSnapshot.Counter(name: $0.name, labels: $0.labels, value: $0.value) }
        snapshot.gauges = values.gauges.map { MetricSnapshot.Gauge(name: $0.name, labels: $0.labels, value: $0.value) }
        snapshot.histograms = values.histograms.map { entry in
            let sparse = entry.histogram.sparseCounts
            return MetricSnapshot.Histogram(
                name: entry.name, labels: entry.labels, unit: entry.unit, scheme: .logLinear,
                precisionBits: UInt32(entry.histogram.precisionBits), firstBucket: UInt32(sparse.firstBucket),
                counts: Array(sparse.counts), count: entry.histogram.count, sum: entry.histogram.sum,
                min: entry.histogram.min, max: entry.histogram.max)
        }
        return snapshot
    }
}

/// Resource gauges refreshed before each snapshot (and so also visible on `/metrics`).
final class ResourceGauges: Sendable {
    private let cpu = Gauge(label: "mesh_process_cpu_seconds")
    private let resident = Gauge(label: "mesh_process_resident_memory_bytes")
    private let memoryLimit = Gauge(label: "mesh_process_memory_limit_bytes")
    private let fds = Gauge(label: "mesh_process_open_fds")
    private let threads = Gauge(label: "mesh_process_threads")
    private let uptime = Gauge(label: "mesh_process_uptime_seconds")
    private let natsIn = Gauge(label: "mesh_nats_in_messages")
    private let natsOut = Gauge(label: "mesh_nats_out_messages")
    private let natsInBytes = Gauge(label: "mesh_nats_in_bytes")
    private let natsOutBytes = Gauge(label: "mesh_nats_out_bytes")
    private let natsConnected = Gauge(label: "mesh_nats_connected")
    private let natsBuffered = Gauge(label: "mesh_nats_pending_bytes")
    private let natsRequests = Gauge(label: "mesh_nats_requests_in_flight")
    private let poolSize = Gauge(label: "mesh_postgres_pool_connections", dimensions: [("state", "open")])
    private let poolInUse = Gauge(label: "mesh_postgres_pool_connections", dimensions: [("state", "in_use")])
    private let poolWaiting = Gauge(label: "mesh_postgres_pool_waiting")

    func refresh(context: ServiceContext) {
        let process = ProcessStats.current()
        cpu.record(process.cpuSeconds)
        resident.record(Double(process.residentBytes))
        memoryLimit.record(Double(process.memoryLimitBytes))
        fds.record(Double(process.openFileDescriptors))
        threads.record(Double(process.threads))
        uptime.record(Date().timeIntervalSince(context.startedAt))
        let nats = context.nats.statistics
        natsIn.record(Double(nats.inMsgs))
        natsOut.record(Double(nats.outMsgs))
        natsInBytes.record(Double(nats.inBytes))
        natsOutBytes.record(Double(nats.outBytes))
        natsConnected.record(context.nats.isConnected ? 1 : 0)
        natsBuffered.record(Double(context.nats.bufferedBytes))
        natsRequests.record(Double(context.nats.requestsInFlight))
        if let pool = context.store?.statistics {
            poolSize.record(Double(pool.size))
            poolInUse.record(Double(pool.inUse))
            poolWaiting.record(Double(pool.waiting))
        }
    }
}
