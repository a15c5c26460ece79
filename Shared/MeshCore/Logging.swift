public import Logging
import Foundation

/// Parses log level names (`info`, `debug`, …) as swift-log spells them.
public enum LogLevelParser {
    public static func parse(_ text: String) -> Logger.Level? { Logger.Level(rawValue: text.lowercased()) }
}

/// A swift-log handler writing one JSON object per line to standard error:
/// `{"ts":"2026-11-23T06:41:43.123Z","level":"info","label":"mesh.registry","msg":"…","mesh.agent.id":"…"}`.
///
/// Metadata keys are dotted (`mesh.agent.id`). Messages and metadata must never carry
/// secrets, SQL or payloads; this handler escapes but does not filter.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: LogFormat

    public init(label: String, level: Logger.Level = .info, format: LogFormat = .json) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let timestamp = Self.timestamp()
        var line: String
        switch format {
        case .json:
            line = "{\"ts\":\"\(timestamp)\",\"level\":\"\(event.level.rawValue)\",\"label\":"
            Self.appendJSONString(label, to: &line)
            line += ",\"msg\":"
            Self.appendJSONString(event.message.description, to: &line)
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                line += ","
                Self.appendJSONString(key, to: &line)
                line += ":"
                Self.appendJSONValue(value, to: &line)
            }
            line += "}\n"
        case .text:
            line = "\(timestamp) \(event.level.rawValue.uppercased()) \(label): \(event.message)"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
            line += "\n"
        }
        StandardError.write(line)
    }

    /// Installs this handler for the whole process (call once, at start).
    public static func bootstrap(level: Logger.Level, format: LogFormat) {
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level, format: format) }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = now.tv_nsec / 1_000_000
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    /// Appends `text` as a JSON string literal (quoted and escaped).
    public static func appendJSONString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    private static func appendJSONValue(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let text): appendJSONString(text, to: &out)
        case .stringConvertible(let convertible): appendJSONString(convertible.description, to: &out)
        case .array(let values):
            out += "["
            for (index, element) in values.enumerated() {
                if index > 0 { out += "," }
                appendJSONValue(element, to: &out)
            }
            out += "]"
        case .dictionary(let dictionary):
            out += "{"
            for (index, (key, element)) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out += "," }
                appendJSONString(key, to: &out)
                out += ":"
                appendJSONValue(element, to: &out)
            }
            out += "}"
        }
    }
}

/// Unbuffered, whole-line writes to standard error (a line is one `write(2)`, so lines
/// from different threads never interleave).
enum StandardError {
    static func write(_ line: String) {
        var line = line
        line.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
