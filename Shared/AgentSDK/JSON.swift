import Foundation
import MeshCore

/// Any JSON value, for kinds that store or forward JSON they do not interpret (`kv`
/// values, `fanout` replies). Encodes canonically (object keys sorted).
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses `bytes` as one JSON document, or nil when they are not JSON.
    public init?(parsing bytes: [UInt8]) {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else { return nil }
        self = value
    }

    /// The canonical encoding (sorted keys, no whitespace).
    public var canonicalBytes: [UInt8] { JSONCoding.encode(self) }
}

/// JSON helpers shared by the built-in kinds: decoding with messages that name the field
/// at fault but never echo the input.
enum JSONCoding {
    /// Decodes `bytes` (empty reads as `{}`) or throws `invalid_argument` naming `what`.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: @autoclosure () -> String) throws(MeshError) -> T {
        // No config for a kind that takes none: nothing to decode (every echo agent created).
        if bytes.isEmpty, let none = NoConfiguration() as? T { return none }
        let data = bytes.isEmpty ? Data("{}".utf8) : Data(bytes)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw MeshError(.invalidArgument, "\(what()): \(describe(error))")
        } catch let error as MeshError {
            throw error
        } catch {
            throw MeshError(.invalidArgument, "\(what()): not valid JSON")
        }
    }

    /// Encodes `value` with sorted keys. Only called on the kinds' own types, which always
    /// encode; a failure is a bug and answers `internal`.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return Array(#"{"error":"unencodable"}"#.utf8) }
        return Array(data)
    }

    /// Whether `bytes` hold exactly one JSON document.
    static func isJSON(_ bytes: [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
    }

    /// A message for a decoding error: the field path and what was wrong, never a value.
    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            var keys = codingPath
            if let last { keys.append(last) }
            guard !keys.isEmpty else { return "the document" }
            var text = ""
            for key in keys {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return "field '\(text.prefix(120))'"
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) has the wrong type (expected \(typeName(type)))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) is missing or null (expected \(typeName(type)))"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath, key)) is required"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context.codingPath)) is invalid"
        @unknown default:
            return "not valid"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type, is UInt32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        default:
            String(describing: type).hasPrefix("Array") ? "an array" : "an object"
        }
    }
}

/// Checks of configuration values, throwing `invalid_argument` with the field's name and
/// its allowed range.
enum Check {
    static func range<T: BinaryInteger>(_ value: T?, _ field: String, in range: ClosedRange<T>, default fallback: T, kind: String)
        throws(MeshError) -> T
    {
        guard let value else { return fallback }
        guard range.contains(value) else {
            throw MeshError(.invalidArgument, "\(kind) config: '\(field)' must be within \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// Shortens user text (an action name, a kind name) before it goes into a message.
    static func shown(_ text: String, max: Int = 64) -> String {
        text.count > max ? String(text.prefix(max)) + "…" : text
    }
}

