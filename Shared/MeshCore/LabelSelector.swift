/// Rules for agent labels, Kubernetes-like: at most ``maxCount`` labels; a key is a name
/// of 1–63 characters `[A-Za-z0-9._-]` beginning and ending with a letter or digit,
/// optionally behind a DNS-subdomain prefix and a slash (`example.com/team`); a value is
/// empty or follows the name rule.
///
/// ```swift
/// try Labels.validate(["team": "search", "example.com/tier": "gold"])
/// ```
public enum Labels {
    /// Most labels on one agent.
    public static let maxCount = 64
    /// Longest name part of a key, and longest value.
    public static let maxNameLength = 63
    /// Longest DNS prefix of a key.
    public static let maxPrefixLength = 253

    /// Whether `text` is a name: 1–63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
    public static func isValidName(_ text: some StringProtocol) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameLength, isAlnum(bytes.first!), isAlnum(bytes.last!) else { return false }
        return bytes.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// Whether `text` is a label key: a name, optionally after `<dns-subdomain>/`.
    public static func isValidKey(_ text: some StringProtocol) -> Bool {
        let parts = text.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return isValidName(parts[0])
        case 2: return isValidPrefix(parts[0]) && isValidName(parts[1])
        default: return false
        }
    }

    /// Whether `text` is a label value: empty, or a name.
    public static func isValidValue(_ text: some StringProtocol) -> Bool { text.isEmpty || isValidName(text) }

    /// Validates a label set.
    /// - Throws: ``MeshError`` `invalid_argument` naming the first bad key or value.
    public static func validate(_ labels: [String: String]) throws(MeshError) {
        guard labels.count <= maxCount else {
            throw MeshError(.invalidArgument, "at most \(maxCount) labels allowed, got \(labels.count)")
        }
        for key in labels.keys.sorted() {
            guard isValidKey(key) else { throw MeshError(.invalidArgument, "invalid label key \(shown(key)): \(keyRule)") }
            guard isValidValue(labels[key]!) else {
                throw MeshError(.invalidArgument, "invalid value of label \(shown(key)): \(valueRule)")
            }
        }
    }

    static let keyRule = "a key is [prefix/]name, the name 1-63 characters of [A-Za-z0-9._-] beginning and ending with a letter or digit, the prefix a DNS subdomain"
    static let valueRule = "a value is empty or 1-63 characters of [A-Za-z0-9._-] beginning and ending with a letter or digit"

    static func shown(_ text: some StringProtocol) -> String {
        String(reflecting: text.count > 80 ? String(text.prefix(80)) + "…" : String(text))
    }

    private static func isValidPrefix(_ text: some StringProtocol) -> Bool {
        guard !text.isEmpty, text.utf8.count <= maxPrefixLength else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            let bytes = Array(part.utf8)
            guard !bytes.isEmpty, bytes.count <= 63, isLowerAlnum(bytes.first!), isLowerAlnum(bytes.last!) else { return false }
            return bytes.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
        }
    }

    private static func isAlnum(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

/// A Kubernetes-style label selector: requirements joined by commas, all of which must hold.
///
/// | form | matches |
/// |---|---|
/// | `k=v`, `k==v` | label `k` is `v` |
/// | `k!=v` | label `k` is not `v` (or absent) |
/// | `k` | label `k` exists |
/// | `!k` | label `k` is absent |
/// | `k in (a,b)` | label `k` is `a` or `b` |
/// | `k notin (a,b)` | label `k` is neither (or absent) |
///
/// Whitespace around tokens is ignored; the empty selector matches everything. Bounded:
/// at most ``maxLength`` bytes, ``maxRequirements`` requirements, ``maxValues`` values per set.
///
/// ```swift
/// let selector = try LabelSelector("team=search, tier in (gold,silver), !canary")
/// selector.matches(["team": "search", "tier": "gold"])   // true
/// ```
public struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    /// One condition on one label.
    public enum Requirement: Sendable, Hashable {
        case equals(String, String)
        case notEquals(String, String)
        case exists(String)
        case notExists(String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)

        /// The label key the requirement is about.
        public var key: String {
            switch self {
            case .equals(let key, _), .notEquals(let key, _), .exists(let key), .notExists(let key), .isIn(let key, _),
                .notIn(let key, _):
                key
            }
        }

        /// Whether `labels` satisfy the requirement.
        public func matches(_ labels: [String: String]) -> Bool {
            switch self {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .notExists(let key): labels[key] == nil
            case .isIn(let key, let values): labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): labels[key].map { !values.contains($0) } ?? true
            }
        }
    }

    /// Longest selector text, in bytes.
    public static let maxLength = 4096
    /// Most requirements in one selector.
    public static let maxRequirements = 64
    /// Most values in one `in`/`notin` set.
    public static let maxValues = 64

    /// The requirements, in the order written.
    public let requirements: [Requirement]

    /// The selector that matches everything.
    public static let everything = LabelSelector(requirements: [])

    public init(requirements: [Requirement]) { self.requirements = requirements }

    /// Parses a selector.
    /// - Throws: ``MeshError`` `invalid_argument` saying what is wrong and where.
    public init(_ text: String) throws(MeshError) {
        guard text.utf8.count <= Self.maxLength else {
            throw MeshError(.invalidArgument, "label selector longer than \(Self.maxLength) bytes")
        }
        var parser = SelectorParser(text)
        requirements = try parser.parse()
    }

    /// Whether the selector matches nothing-specific (the empty selector).
    public var isEmpty: Bool { requirements.isEmpty }

    /// Whether `labels` satisfy every requirement.
    public func matches(_ labels: [String: String]) -> Bool { requirements.allSatisfy { $0.matches(labels) } }

    /// The canonical text (`k=v`, `k in (a,b)` with sorted values).
    public var description: String {
        requirements.map { requirement -> String in
            switch requirement {
            case .equals(let key, let value): "\(key)=\(value)"
            case .notEquals(let key, let value): "\(key)!=\(value)"
            case .exists(let key): key
            case .notExists(let key): "!\(key)"
            case .isIn(let key, let values): "\(key) in (\(values.sorted().joined(separator: ",")))"
            case .notIn(let key, let values): "\(key) notin (\(values.sorted().joined(separator: ",")))"
            }
        }.joined(separator: ",")
    }
}

/// A recursive-descent parser over the selector's UTF-8 bytes.
private struct SelectorParser {
    let bytes: [UInt8]
    var position = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    mutating func parse() throws(MeshError) -> [LabelSelector.Requirement] {
        var result: [LabelSelector.Requirement] = []
        skipSpaces()
        if position == bytes.count { return [] }
        while true {
            result.append(try requirement())
            guard result.count <= LabelSelector.maxRequirements else {
                throw MeshError(.invalidArgument, "label selector has more than \(LabelSelector.maxRequirements) requirements")
            }
            skipSpaces()
            if position == bytes.count { return result }
            guard bytes[position] == UInt8(ascii: ",") else { throw failure("expected ',' or the end") }
            position += 1
        }
    }

    mutating func requirement() throws(MeshError) -> LabelSelector.Requirement {
        skipSpaces()
        if peek("!") {
            position += 1
            skipSpaces()
            let key = try self.key()
            return .notExists(key)
        }
        let key = try self.key()
        skipSpaces()
        if position == bytes.count || bytes[position] == UInt8(ascii: ",") { return .exists(key) }
        if peek("!=") {
            position += 2
            return .notEquals(key, try value())
        }
        if peek("==") {
            position += 2
            return .equals(key, try value())
        }
        if peek("=") {
            position += 1
            return .equals(key, try value())
        }
        let word = self.word()
        switch word {
        case "in": return .isIn(key, try set())
        case "notin": return .notIn(key, try set())
        default: throw failure("expected =, ==, !=, in or notin after \(Labels.shown(key))")
        }
    }

    mutating func key() throws(MeshError) -> String {
        let key = word()
        guard !key.isEmpty else { throw failure("expected a label key") }
        guard Labels.isValidKey(key) else { throw failure("invalid label key \(Labels.shown(key)): \(Labels.keyRule)") }
        return key
    }

    mutating func value() throws(MeshError) -> String {
        skipSpaces()
        let value = word()
        guard Labels.isValidValue(value) else { throw failure("invalid label value \(Labels.shown(value)): \(Labels.valueRule)") }
        return value
    }

    mutating func set() throws(MeshError) -> Set<String> {
        skipSpaces()
        guard peek("(") else { throw failure("expected '(' to start a set of values") }
        position += 1
        var values: Set<String> = []
        while true {
            let value = try self.value()
            guard !value.isEmpty else { throw failure("expected a value in the set") }
            values.insert(value)
            guard values.count <= LabelSelector.maxValues else {
                throw failure("a set holds at most \(LabelSelector.maxValues) values")
            }
            skipSpaces()
            if peek(")") {
                position += 1
                return values
            }
            guard peek(",") else { throw failure("expected ',' or ')' in a set of values") }
            position += 1
        }
    }

    /// The longest run of characters that may appear in a key or value.
    mutating func word() -> String {
        let start = position
        while position < bytes.count {
            let byte = bytes[position]
            let allowed =
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "/")
            if !allowed { break }
            position += 1
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    mutating func skipSpaces() {
        while position < bytes.count, bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t") { position += 1 }
    }

    func peek(_ token: StaticString) -> Bool {
        let count = token.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        return token.withUTF8Buffer { Array($0) == Array(bytes[position..<(position + count)]) }
    }

    func failure(_ what: String) -> MeshError {
        MeshError(.invalidArgument, "label selector: \(what) at byte \(position)")
    }
}
