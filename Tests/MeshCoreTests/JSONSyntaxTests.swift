import Foundation
import MeshCore
import Testing

@Suite("JSON syntax check")
struct JSONSyntaxTests {
    static let valid = [
        "{}", "[]", "0", "-0", "1.5e+3", "-12.25E-2", "true", "false", "null", #""""#, #""a\"b\\c\/\b\f\n\r\t\u00e9\uD83D\uDE00""#,
        #"{"a":[1,2,{"b":null}],"c":"é"}"#, " \t\n{ \"k\" : [ ] }\r\n", "[[[[[]]]]]", #"{"":0}"#, "123456789012345678901234567890",
    ]
    static let invalid = [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "{'a':1}", "01", "1.", ".5", "1e", "+1", "-", "tru", "nul", "True",
        "\"abc", "\"a\u{01}b\"", #""\x""#, #""\u12G4""#, "[1 2]", "{\"a\" 1}", "1 2", "[] x", "NaN", "Infinity", "{\"a\":}",
    ]

    @Test func acceptsJSONAndRejectsTheRest() {
        for text in Self.valid { #expect(JSONSyntax.isValid(Array(text.utf8)), "\(text)") }
        for text in Self.invalid { #expect(!JSONSyntax.isValid(Array(text.utf8)), "\(text)") }
        #expect(!JSONSyntax.isValid([0x22, 0xFF, 0x22]))  // not UTF-8
        let deep = String(repeating: "[", count: JSONSyntax.maxDepth + 1) + String(repeating: "]", count: JSONSyntax.maxDepth + 1)
        #expect(!JSONSyntax.isValid(Array(deep.utf8)))
        let deepest = String(repeating: "[", count: JSONSyntax.maxDepth) + String(repeating: "]", count: JSONSyntax.maxDepth)
        #expect(JSONSyntax.isValid(Array(deepest.utf8)))
    }

    /// Random edits of valid documents: the check agrees with `JSONSerialization`.
    @Test func agreesWithFoundationOnMutations() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let seeds = [#"{"a":[1,2.5,-3e2,{"b":null,"c":true}],"d":"x y","e":false}"#, #"[0,{"k":[[]]},"s",1.25]"#]
        let alphabet = Array(#"{}[]:,"0123456789.-+eEtrufalsn x"#.utf8)
        var disagreements: [String] = []
        for _ in 0..<4_000 {
            var bytes = Array(seeds[next(seeds.count)].utf8)
            for _ in 0..<(1 + next(3)) {
                let position = next(bytes.count + 1)
                switch next(3) {
                case 0 where position < bytes.count: bytes.remove(at: position)
                case 1: bytes.insert(alphabet[next(alphabet.count)], at: position)
                default: if position < bytes.count { bytes[position] = alphabet[next(alphabet.count)] }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
            // Foundation's parser also takes a trailing comma (`[1,]`), which RFC 8259 does not.
            let compact = text.replacingOccurrences(of: " ", with: "")
            let trailingComma = compact.contains(",]") || compact.contains(",}")
            if foundation != JSONSyntax.isValid(bytes), !(foundation && trailingComma) { disagreements.append(text) }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }
}
