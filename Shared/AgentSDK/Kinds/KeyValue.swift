import MeshCore

/// `kv`: a stateful map from string keys to JSON values (checkpointed), bounded in
/// entries, key size, value size and total size — the whole map is one checkpoint, so
/// the total must fit the checkpoint store (NATS KV: 1 MiB by default).
///
/// ```json
/// config:   {"maxEntries": 1000, "maxKeyBytes": 256, "maxValueBytes": 16384, "maxTotalBytes": 524288}
/// "put"     {"key": "k", "value": <any JSON>}          → {"created": true, "entries": 1}
/// "get"     {"key": "k"}                               → {"key": "k", "value": <JSON>}   (missing: not_found)
/// "delete"  {"key": "k"}                               → {"deleted": true, "entries": 0}
/// "list"    {"prefix": "", "after": "", "limit": 100}  → {"keys": ["k"], "next": "k" | null}
/// snapshot  {"entries": {"k": <JSON>}, "v": 1}
/// ```
/// Values are stored in canonical JSON (sorted keys); sizes count those bytes. `list`
/// returns keys in byte order, at most `limit` (≤ 1000); pass `next` as `after` to page.
public struct KeyValueKind: AgentBehavior {
    /// The registered name, `kv`.
    public static let kindName = AgentKindName.keyValue

    public struct Configuration: Decodable, Sendable {
        /// Most keys held. Default 1 000, at most 100 000.
        public var maxEntries: Int?
        /// Longest key in UTF-8 bytes. Default 256, at most 1 024.
        public var maxKeyBytes: Int?
        /// Largest value (canonical JSON bytes). Default 16 KiB, at most 1 MiB.
        public var maxValueBytes: Int?
        /// Largest sum of key and value bytes. Default 512 KiB, at most 16 MiB.
        public var maxTotalBytes: Int?
    }

    struct KeyOnly: Decodable { var key: String }
    struct Put: Decodable { var key: String; var value: JSONValue }
    struct List: Decodable { var prefix: String?; var after: String?; var limit: Int? }
    struct Snapshot: Decodable { var v: Int?; var entries: [String: JSONValue] }
    struct PutReply: Encodable { var created: Bool; var entries: Int }
    struct DeleteReply: Encodable { var deleted: Bool; var entries: Int }
    struct ListReply: Encodable {
        var keys: [String]
        var next: String?
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(keys, forKey: .keys)
            try container.encode(next, forKey: .next)   // null when there is no next page
        }
        enum CodingKeys: String, CodingKey { case keys, next }
    }

    let maxEntries: Int
    let maxKeyBytes: Int
    let maxValueBytes: Int
    let maxTotalBytes: Int
    /// Key → canonical JSON bytes of the value.
    private(set) var entries: [String: [UInt8]] = [:]
    private(set) var totalBytes = 0

    public init(configuration: Configuration, setup: AgentSetup) throws {
        maxEntries = try Check.range(configuration.maxEntries, "maxEntries", in: 1...100_000, default: 1_000, kind: "kv")
        maxKeyBytes = try Check.range(configuration.maxKeyBytes, "maxKeyBytes", in: 1...1_024, default: 256, kind: "kv")
        maxValueBytes = try Check.range(configuration.maxValueBytes, "maxValueBytes", in: 1...(1 << 20), default: 16 << 10, kind: "kv")
        maxTotalBytes = try Check.range(configuration.maxTotalBytes, "maxTotalBytes", in: 1...(16 << 20), default: 512 << 10, kind: "kv")
    }

    /// Number of keys held.
    public var count: Int { entries.count }

    public static let answersInline = true

    public mutating func handle(_ action: String, payload: [UInt8], context: AgentContext) async throws -> [UInt8] {
        try handleInline(action, payload: payload, context: context)
    }

    public mutating func handleInline(_ action: String, payload: [UInt8], context: AgentContext) throws -> [UInt8] {
        switch action {
        case "put":
            let put = try JSONCoding.decode(Put.self, from: payload, what: "kv action 'put'")
            try checkKey(put.key)
            let value = put.value.canonicalBytes
            guard value.count <= maxValueBytes else {
                throw MeshError(.tooLarge, "kv action 'put': the value is \(value.count) bytes; the limit is \(maxValueBytes)")
            }
            let old = entries[put.key]
            if old == nil, entries.count >= maxEntries {
                throw MeshError(.tooLarge, "kv action 'put': the map holds its maximum of \(maxEntries) keys")
            }
            let newTotal = totalBytes - (old.map { $0.count + put.key.utf8.count } ?? 0) + value.count + put.key.utf8.count
            guard newTotal <= maxTotalBytes else {
                throw MeshError(.tooLarge, "kv action 'put': the map would exceed its total size limit of \(maxTotalBytes) bytes")
            }
            entries[put.key] = value
            totalBytes = newTotal
            return JSONCoding.encode(PutReply(created: old == nil, entries: entries.count))
        case "get":
            let key = try JSONCoding.decode(KeyOnly.self, from: payload, what: "kv action 'get'").key
            guard let value = entries[key] else { throw MeshError(.notFound, "kv action 'get': no such key") }
            return Array(#"{"key":"#.utf8) + JSONCoding.encode(key) + Array(#","value":"#.utf8) + value + [UInt8(ascii: "}")]
        case "delete":
            let key = try JSONCoding.decode(KeyOnly.self, from: payload, what: "kv action 'delete'").key
            let old = entries.removeValue(forKey: key)
            if let old { totalBytes -= old.count + key.utf8.count }
            return JSONCoding.encode(DeleteReply(deleted: old != nil, entries: entries.count))
        case "list":
            let list = try JSONCoding.decode(List.self, from: payload, what: "kv action 'list'")
            let limit = try Check.range(list.limit, "limit", in: 1...1_000, default: 100, kind: "kv action 'list'")
            let prefix = list.prefix ?? ""
            let after = list.after ?? ""
            let matching = entries.keys.filter { $0.hasPrefix(prefix) && (after.isEmpty || Self.less(after, $0)) }
                .sorted(by: Self.less)
            let page = Array(matching.prefix(limit))
            return JSONCoding.encode(ListReply(keys: page, next: matching.count > limit ? page.last : nil))
        default:
            throw MeshError(.invalidArgument, "kind kv has no action '\(Check.shown(action))'; actions: put, get, delete, list")
        }
    }

    public func snapshot() throws -> [UInt8]? {
        var bytes = Array(#"{"entries":{"#.utf8)
        bytes.reserveCapacity(totalBytes + entries.count * 6 + 32)
        for (index, key) in entries.keys.sorted(by: Self.less).enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += JSONCoding.encode(key)
            bytes.append(UInt8(ascii: ":"))
            bytes += entries[key]!
        }
        bytes += Array(#"},"v":1}"#.utf8)
        return bytes
    }

    /// Restores the map. A snapshot holding more than this agent's limits allow (the
    /// config was lowered) is restored whole; new puts then stay refused until it shrinks.
    public mutating func restore(from snapshot: [UInt8]) throws {
        let decoded = try JSONCoding.decode(Snapshot.self, from: snapshot, what: "kv snapshot")
        var restored: [String: [UInt8]] = [:]
        var total = 0
        for (key, value) in decoded.entries {
            let bytes = value.canonicalBytes
            restored[key] = bytes
            total += key.utf8.count + bytes.count
        }
        entries = restored
        totalBytes = total
    }

    public func mayChangeState(_ action: String) -> Bool { action == "put" || action == "delete" }

    private func checkKey(_ key: String) throws(MeshError) {
        guard !key.isEmpty, key.utf8.count <= maxKeyBytes else {
            throw MeshError(.invalidArgument, "kv: a key must be 1...\(maxKeyBytes) bytes of UTF-8")
        }
    }

    /// Byte order of the UTF-8 encodings (stable across platforms, unlike locale order).
    static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
}
