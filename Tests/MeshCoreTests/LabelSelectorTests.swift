import MeshCore
import Testing

@Suite struct LabelSelectorTests {
    let labels = ["team": "search", "tier": "gold", "example.com/zone": "eu-1"]

    @Test func everyFormParsesAndMatches() throws {
        let cases: [(String, Bool)] = [
            ("", true), ("team=search", true), ("team==search", true), ("team=other", false), ("team!=other", true),
            ("team!=search", false), ("missing!=x", true), ("team", true), ("missing", false), ("!missing", true),
            ("!team", false), ("tier in (gold,silver)", true), ("tier in (silver)", false), ("missing in (a)", false),
            ("tier notin (silver, bronze)", true), ("tier notin (gold)", false), ("missing notin (a)", true),
            ("team=search,tier=gold", true), ("team=search,tier=silver", false), ("example.com/zone=eu-1", true),
            ("  team = search ,  tier in ( gold , silver ) , ! canary ", true), ("team=", false), ("missing=", false),
        ]
        for (text, expected) in cases {
            let selector = try LabelSelector(text)
            #expect(selector.matches(labels) == expected, "\(text)")
        }
        #expect(try LabelSelector("empty=").matches(["empty": ""]))
    }

    @Test func parsedStructure() throws {
        let selector = try LabelSelector("a=1,b!=2,c,!d,e in (x,y),f notin (z)")
        #expect(selector.requirements == [
            .equals("a", "1"), .notEquals("b", "2"), .exists("c"), .notExists("d"), .isIn("e", ["x", "y"]), .notIn("f", ["z"]),
        ])
        #expect(selector.description == "a=1,b!=2,c,!d,e in (x,y),f notin (z)")
        #expect(try LabelSelector(selector.description) == selector)
        #expect(try LabelSelector("").isEmpty)
        #expect(try LabelSelector("   ").isEmpty)
    }

    @Test func malformedSelectorsAreRejectedWithTheCode() {
        let bad = [
            "=x", "a=b=c", "a in b", "a in (b", "a in ()", "a in (b,)", "a,,b", "a,", ",a", "a b", "a=(x)", "-a=b", "a=b-",
            "!", "a notin", "a in (b c)", "a;b", "a=ü", "a/b/c=d", "Bad_.Prefix/a=b", String(repeating: "k", count: 64) + "=v",
            "a=" + String(repeating: "v", count: 64), String(repeating: "a,", count: 65) + "a",
            "a in (" + (0..<65).map { "v\($0)" }.joined(separator: ",") + ")", String(repeating: " ", count: 5000),
        ]
        for text in bad {
            #expect(throws: MeshError.self, "\(text)") { try LabelSelector(text) }
            do { _ = try LabelSelector(text) } catch { #expect(error.code == .invalidArgument) }
        }
    }

    @Test func labelRules() throws {
        try Labels.validate(["team": "search", "example.com/tier": "gold", "a.b_c-d": "", "x": "A.b_C-9"])
        #expect(Labels.isValidKey("k8s.io/name"))
        #expect(!Labels.isValidKey("/name"))
        #expect(!Labels.isValidKey("Example.com/name"))
        #expect(!Labels.isValidKey(""))
        #expect(!Labels.isValidValue("-x"))
        #expect(Labels.isValidValue(String(repeating: "v", count: 63)))
        #expect(!Labels.isValidValue(String(repeating: "v", count: 64)))
        #expect(throws: MeshError.self) { try Labels.validate(["bad key": "v"]) }
        #expect(throws: MeshError.self) { try Labels.validate(["k": "bad value"]) }
        let many = Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") })
        #expect(throws: MeshError.self) { try Labels.validate(many) }
    }

    @Test func kindNames() throws {
        #expect(AgentKindName.builtIn.contains("echo") && AgentKindName.builtIn.contains("kv"))
        #expect(AgentKindName.builtIn == AgentKindName.builtIn.sorted())
        #expect(try AgentKindName.parseList(" greeter, my_kind ,,") == ["greeter", "my_kind"])
        #expect(throws: MeshError.self) { try AgentKindName.parseList("Bad.Kind") }
    }
}
