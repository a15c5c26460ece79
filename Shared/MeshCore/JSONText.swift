public import Foundation

/// Writes a JSON document from the values `JSONSerialization` takes (`[String: Any]`,
/// `[Any]`, strings, numbers, booleans, `NSNull`, and what `JSONSerialization` parsed:
/// `NSNumber`, `NSDictionary`, `NSArray`), keys sorted by their UTF-8 bytes — directly,
/// without `JSONSerialization`'s bridging and locale-aware key sorting, which took about
/// half of the gateway's CPU on an agent document.
///
/// ```swift
/// JSONText.bytes(["id": "echo-1", "labels": ["team": "a"], "ok": true])  // {"id":"echo-1","labels":{"team":"a"},"ok":true}
/// ```
public enum JSONText {
    /// The document, or nil when `value` holds something JSON cannot represent (a date, a
    /// non-finite number, another type).
    public static func bytes(_ value: Any) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        return write(value, into: &out) ? out : nil
    }

    /// A flat string map (labels, event attributes) as a JSON object, keys sorted by their
    /// UTF-8 bytes, with no dynamic casts.
    public static func string(_ map: [String: String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(2 + map.count * 24)
        for key in map.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            writeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            writeString(map[key]!, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    private static func write(_ value: Any, into out: inout [UInt8]) -> Bool {
        if let text = value as? String {
            writeString(text, into: &out)
            return true
        }
        switch value {
        case let flag as Bool where type(of: value) == Bool.self: out.append(contentsOf: flag ? Array("true".utf8) : Array("false".utf8))
        case let number as Int where type(of: value) == Int.self: out.append(contentsOf: String(number).utf8)
        case let number as Int64 where type(of: value) == Int64.self: out.append(contentsOf: String(number).utf8)
        case let number as Int32 where type(of: value) == Int32.self: out.append(contentsOf: String(number).utf8)
        case let number as UInt64 where type(of: value) == UInt64.self: out.append(contentsOf: String(number).utf8)
        case let number as UInt32 where type(of: value) == UInt32.self: out.append(contentsOf: String(number).utf8)
        case let number as UInt where type(of: value) == UInt.self: out.append(contentsOf: String(number).utf8)
        case let number as Double where type(of: value) == Double.self: return writeDouble(number, into: &out)
        case let number as NSNumber: return writeNumber(number, into: &out)
        case is NSNull: out.append(contentsOf: "null".utf8)
        case let object as [String: Any]:
            out.append(UInt8(ascii: "{"))
            var first = true
            for key in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                guard write(object[key]!, into: &out) else { return false }
            }
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                guard write(element, into: &out) else { return false }
            }
            out.append(UInt8(ascii: "]"))
        default: return false
        }
        return true
    }

    /// `JSONSerialization`'s numbers: booleans are `NSNumber`s of type `c`.
    private static func writeNumber(_ number: NSNumber, into out: inout [UInt8]) -> Bool {
        switch String(cString: number.objCType) {
        case "c": out.append(contentsOf: number.boolValue ? Array("true".utf8) : Array("false".utf8))
        case "d", "f": return writeDouble(number.doubleValue, into: &out)
        case "Q", "L", "I", "S", "C": out.append(contentsOf: String(number.uint64Value).utf8)
        default: out.append(contentsOf: String(number.int64Value).utf8)
        }
        return true
    }

    private static func writeDouble(_ number: Double, into out: inout [UInt8]) -> Bool {
        guard number.isFinite else { return false }
        if number == number.rounded(), abs(number) < 1e15 {
            out.append(contentsOf: String(Int64(number)).utf8)
        } else {
            out.append(contentsOf: "\(number)".utf8)
        }
        return true
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private static func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
