import Synchronization

/// What a process's `/metrics` serves: by default its own Prometheus registry; a service
/// may install a renderer of its own (the metrics collector serves the cluster view, which
/// includes its own snapshot).
///
/// ```swift
/// context.metricsExposition.serve { PrometheusExposition.render(cluster, now: now) }
/// ```
public final class MetricsExpositionHook: Sendable {
    private let renderer = Mutex<(@Sendable () -> [UInt8])?>(nil)

    init() {}

    /// Serves `render()`'s text at `/metrics` from now on, instead of the process's registry.
    public func serve(_ render: @escaping @Sendable () -> [UInt8]) {
        renderer.withLock { $0 = render }
    }

    /// The installed renderer's text, else `fallback()`'s.
    func render(fallback: () -> [UInt8]) -> [UInt8] {
        if let render = renderer.withLock({ $0 }) { return render() }
        return fallback()
    }
}
