import Foundation
import MeshCore
import Testing

@Suite("JSON writer")
struct JSONTextTests {
    /// What `JSONSerialization` reads back from `bytes`, for comparison.
    static func parsed(_ bytes: [UInt8]) throws -> NSObject {
        try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as! NSObject
    }

    @Test func writesWhatFoundationWouldReadTheSame() throws {
        let config = try JSONSerialization.jsonObject(with: Data(#"{"on":true,"off":false,"n":1,"zero":0,"x":1.5,"big":18446744073709551615,"neg":-7,"s":"é\n\"q\"\\","nil":null,"list":[1,"a",[],{}]}"#.utf8))
        let document: [String: Any] = [
            "id": "echo-1", "generation": 3, "revision": UInt64(42), "count": Int32(-5), "ratio": 0.25, "whole": 2.0, "ok": true,
            "labels": ["team": "a", "tier": "gold"], "tags": ["x", "y"], "config": config, "control": "a\u{01}b\tc", "empty": [String: Any](),
        ]
        let bytes = try #require(JSONText.bytes(document))
        let expected = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
        #expect(try Self.parsed(bytes) == Self.parsed(Array(expected)))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix(#"{"config":{"big":18446744073709551615,"list":[1,"a",[],{}],"n":1,"neg":-7,"nil":null,"off":false,"on":true"#), "\(text)")
        #expect(text.contains(#""ok":true"#) && text.contains(#""whole":2"#) && text.contains(#""control":"a\u0001b\tc""#))
        #expect(JSONSyntax.isValid(bytes))
    }

    @Test func refusesWhatJSONCannotHold() {
        #expect(JSONText.bytes(["when": Date()]) == nil)
        #expect(JSONText.bytes(["x": Double.nan]) == nil)
        #expect(JSONText.bytes([1, Double.infinity]) == nil)
    }

    @Test func writesStringMapsSortedAndEscaped() throws {
        #expect(JSONText.string([:]) == "{}")
        let labels = ["tier": "gold", "team": "a\"b\n", "Zeta": "é", "a": ""]
        let text = JSONText.string(labels)
        #expect(text == #"{"Zeta":"é","a":"","team":"a\"b\n","tier":"gold"}"#)
        #expect(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String] == labels)
    }
}
