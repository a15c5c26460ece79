import Foundation
import MeshCore

/// A self-contained HTML page of a result document: a summary table, then per result
/// three inline SVG charts — latency over time (p50, p99, max per second), the percentile
/// distribution (from the merged histogram) and throughput over time against the target
/// rate (a fixed-size reference run without a timeline gets the distribution only). No
/// script, no external resource: it opens offline.
public enum HTMLReport {
    /// Renders `document`.
    public static func render(_ document: BenchDocument) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>mesh benchmark \(escape(document.gitRevision.prefix(12)))</title>
            <style>
            body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
            table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
            th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
            .charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd;padding:4px}
            h2{margin-top:2em;border-bottom:1px solid #ddd}.muted{color:#777;font-size:12px}
            svg text{font-size:10px;fill:#444}
            </style></head><body>
            <h1>Mesh benchmark</h1>
            <p class="muted">revision \(escape(document.gitRevision)) · \(escape(iso(document.createdAt))) · target \(escape(document.target)) ·
            \(document.machine.cores) cores, \(document.machine.memoryBytes >> 20) MiB, \(escape(document.machine.os))</p>

            """
        html += summaryTable(document)
        if !document.ratios.isEmpty {
            html += "<h2>Mesh ÷ raw NATS (same run)</h2><table><tr><th>ratio</th><th>value</th></tr>"
            for ratio in document.ratios {
                html += "<tr><td>\(escape(ratio.name))</td><td>\(String(format: "%.1f %%", ratio.value * 100))</td></tr>"
            }
            html += "</table>"
        }
        for result in document.results {
            html += "<h2 id=\"\(escape(result.name))-\(result.run)\">\(escape(result.name)) <span class=\"muted\">run \(result.run), profile \(escape(result.profile))</span></h2>"
            let parameters = result.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            html += "<p class=\"muted\">\(escape(parameters))\(result.notes.isEmpty ? "" : " — " + escape(result.notes.joined(separator: "; ")))</p>"
            html += "<div class=\"charts\">"
            if result.timeline.isEmpty {
                // A fixed-size reference run (raw NATS, failover): a distribution, no timeline.
                html += "<div class=\"chart\">" + percentileChart(result) + "</div>"
            } else {
                html += "<div class=\"chart\">" + latencyChart(result) + "</div>"
                html += "<div class=\"chart\">" + percentileChart(result) + "</div>"
                html += "<div class=\"chart\">" + throughputChart(result) + "</div>"
            }
            html += "</div>"
        }
        html += "</body></html>\n"
        return html
    }

    static func summaryTable(_ document: BenchDocument) -> String {
        var html = "<table><tr><th>result</th><th>run</th><th>profile</th><th>ops/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>CPU %</th><th>RSS MiB</th></tr>"
        for r in document.results {
            let cells = [
                escape(r.name), String(r.run), escape(r.profile), String(format: "%.0f", r.throughput), micros(r.latency.p50Micros),
                micros(r.latency.p90Micros), micros(r.latency.p99Micros), micros(r.latency.p999Micros), micros(r.latency.maxMicros),
                "\(r.errors) (\(String(format: "%.2f", r.errorRate * 100)) %)",
                r.resources.sampled ? String(format: "%.0f", r.resources.cpuPercent) : "–",
                r.resources.sampled ? String(r.resources.rssBytes >> 20) : "–",
            ]
            html += "<tr>" + cells.map { "<td>\($0)</td>" }.joined() + "</tr>"
        }
        return html + "</table>"
    }

    /// Formats microseconds for people: ns below 10 µs, µs below 10 ms, else ms.
    public static func micros(_ value: Double) -> String {
        if value < 10 { return String(format: "%.0f ns", value * 1_000) }
        if value < 10_000 { return String(format: "%.1f µs", value) }
        return String(format: "%.2f ms", value / 1_000)
    }

    // MARK: Charts

    struct Series {
        var label: String
        var color: String
        var points: [(x: Double, y: Double)]
        var dashed = false
    }

    static func latencyChart(_ result: BenchResult) -> String {
        let points = result.timeline
        return lineChart(
            title: "latency over time (ms)", xLabel: "s", logY: false,
            series: [
                Series(label: "p50", color: "#1f77b4", points: points.map { (Double($0.second), $0.p50Micros / 1_000) }),
                Series(label: "p99", color: "#d62728", points: points.map { (Double($0.second), $0.p99Micros / 1_000) }),
                Series(label: "max", color: "#999999", points: points.map { (Double($0.second), $0.maxMicros / 1_000) }, dashed: true),
            ])
    }

    static func throughputChart(_ result: BenchResult) -> String {
        var series = [Series(label: "ops/s", color: "#2ca02c", points: result.timeline.map { (Double($0.second), Double($0.operations - $0.errors)) })]
        if result.timeline.contains(where: { $0.targetRate != nil }) {
            series.append(
                Series(label: "target", color: "#ff7f0e", points: result.timeline.compactMap { p in p.targetRate.map { (Double(p.second), $0) } }, dashed: true))
        }
        if result.timeline.contains(where: { $0.errors > 0 }) {
            series.append(Series(label: "errors/s", color: "#d62728", points: result.timeline.map { (Double($0.second), Double($0.errors)) }))
        }
        return lineChart(title: "throughput over time", xLabel: "s", logY: false, series: series)
    }

    /// Latency against percentile on a "nines" axis: x = −log10(1 − q).
    static func percentileChart(_ result: BenchResult) -> String {
        guard let histogram = try? result.histogram.histogram(), histogram.count > 0 else {
            return lineChart(title: "percentile distribution (ms)", xLabel: "percentile", logY: false, series: [])
        }
        var points: [(Double, Double)] = []
        var nines = 0.0
        while nines <= 5 {
            let q = 1 - pow(10, -nines)
            points.append((nines, Double(histogram.percentile(q)) / 1_000_000))
            nines += 0.1
        }
        points.append((5.2, Double(histogram.max) / 1_000_000))
        return lineChart(
            title: "percentile distribution (ms)", xLabel: "percentile", logY: false,
            series: [Series(label: "latency", color: "#9467bd", points: points)],
            xTicks: [(0, "0"), (1, "90"), (2, "99"), (3, "99.9"), (4, "99.99"), (5, "99.999")])
    }

    static func lineChart(title: String, xLabel: String, logY: Bool, series: [Series], xTicks: [(Double, String)]? = nil) -> String {
        let width = 340.0, height = 220.0, left = 48.0, right = 10.0, top = 22.0, bottom = 30.0
        let all = series.flatMap(\.points).filter { $0.y.isFinite && $0.x.isFinite }
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">"
        svg += "<text x=\"\(left)\" y=\"14\" style=\"font-size:12px;font-weight:600\">\(escape(title))</text>"
        guard !all.isEmpty else { return svg + "<text x=\"\(left)\" y=\"100\">no data</text></svg>" }
        let minX = all.map(\.x).min()!, maxX = Swift.max(all.map(\.x).max()!, minX + 1)
        let maxY = niceCeiling(all.map(\.y).max()!)
        func px(_ x: Double) -> Double { left + (x - minX) / (maxX - minX) * (width - left - right) }
        func py(_ y: Double) -> Double { top + (1 - y / maxY) * (height - top - bottom) }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"none\" stroke=\"#ccc\"/>"
        for step in 0...4 {
            let y = maxY * Double(step) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\(q(py(y))) y2=\(q(py(y))) stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 4)\" y=\(q(py(y) + 3)) text-anchor=\"end\">\(axis(y))</text>"
        }
        let ticks = xTicks ?? (0...4).map { step -> (Double, String) in
            let x = minX + (maxX - minX) * Double(step) / 4
            return (x, axis(x))
        }
        for (x, label) in ticks where x >= minX && x <= maxX {
            svg += "<text x=\(q(px(x))) y=\"\(height - bottom + 12)\" text-anchor=\"middle\">\(escape(label))</text>"
        }
        svg += "<text x=\"\(width - right)\" y=\"\(height - 4)\" text-anchor=\"end\">\(escape(xLabel))</text>"
        for (index, line) in series.enumerated() {
            let path = line.points.filter { $0.y.isFinite }.map { "\(String(format: "%.1f", px($0.x))),\(String(format: "%.1f", py($0.y)))" }
                .joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.5\"\(line.dashed ? " stroke-dasharray=\"4 3\"" : "") points=\"\(path)\"/>"
            svg += "<text x=\"\(left + 8 + Double(index) * 70)\" y=\"\(top + 12)\" style=\"fill:\(line.color)\">\(escape(line.label))</text>"
        }
        return svg + "</svg>"
    }

    static func q(_ value: Double) -> String { "\"\(String(format: "%.1f", value))\"" }

    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let magnitude = pow(10, (log10(value)).rounded(.down))
        for factor in [1.0, 2, 2.5, 5, 10] where factor * magnitude >= value { return factor * magnitude }
        return 10 * magnitude
    }

    static func axis(_ value: Double) -> String {
        if value == 0 { return "0" }
        if abs(value) >= 1_000_000 { return String(format: "%.1fM", value / 1_000_000) }
        if abs(value) >= 10_000 { return String(format: "%.0fk", value / 1_000) }
        if abs(value) >= 100 { return String(format: "%.0f", value) }
        if abs(value) >= 1 { return value == value.rounded() ? String(format: "%.0f", value) : String(format: "%.1f", value) }
        return String(format: "%.2g", value)
    }

    static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: date)
    }

    /// HTML-escapes text.
    public static func escape<S: StringProtocol>(_ text: S) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
