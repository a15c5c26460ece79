public import MeshCore
public import MeshProto
public import Nats

/// The in-memory view of every agent, built from the two KV buckets: `mesh_agents` (spec,
/// created/updated times; its KV revision is the record's CAS revision) and `mesh_status`
/// (run status, placement, restarts, last error — written by the owning worker). Every
/// record it returns is the merge of both; an agent without a status entry is `pending`.
///
/// It keeps the ids sorted (cursor pagination), a label index (selectors) and a node
/// index (list by node). Not thread-safe by itself: ``AgentDirectory`` holds it behind a
/// lock. Pure logic, no I/O.
///
/// Ordering: entries carry their KV revision and an older revision never replaces a
/// newer one, so a writer may apply its own write at once (``applyLocal(_:)``) and the
/// watch delivering the same or an older entry later changes nothing. A local delete
/// leaves a tombstone at the deleted revision until the watch has passed it.
public struct AgentIndex: Sendable {
    /// Records of `mesh_agents` by id, `revision` set to their KV revision, status unset.
    private var specs: [String: AgentRecord] = [:]
    /// Records of `mesh_status` by id (status fields only), `revision` = status KV revision.
    private var statuses: [String: AgentRecord] = [:]
    /// Ids deleted locally, with the revision deleted at, until the watch has passed it.
    private var tombstones: [String: UInt64] = [:]
    /// Every id of `specs`, sorted.
    private var sortedIDs: [String] = []
    /// label key → value → ids.
    private var labelIndex: [String: [String: Set<String>]] = [:]
    /// node id → ids placed there (from `mesh_status`).
    private var nodeIndex: [String: Set<String>] = [:]
    /// Highest revision the `mesh_agents` watch delivered.
    public private(set) var agentsRevision: UInt64 = 0
    /// Highest revision the `mesh_status` watch delivered.
    public private(set) var statusRevision: UInt64 = 0

    public init() {}

    /// Number of agents.
    public var count: Int { specs.count }

    /// Outcome of applying one KV entry.
    public enum Change: Sendable, Equatable {
        /// The index changed.
        case applied
        /// An older revision than the one held: ignored.
        case stale
        /// The value is not a decodable `AgentRecord`: ignored.
        case corrupt
    }

    // MARK: Writes

    /// Applies an entry of the `mesh_agents` watch.
    @discardableResult
    public mutating func applyAgent(_ entry: KeyValueEntry) -> Change {
        applyAgent(key: entry.key, value: entry.value, revision: entry.revision, deleted: entry.operation != .put)
    }

    /// Applies a `mesh_agents` value (or a delete/purge marker when `deleted`) at `revision`.
    @discardableResult
    public mutating func applyAgent(key: String, value: [UInt8], revision: UInt64, deleted: Bool) -> Change {
        agentsRevision = max(agentsRevision, revision)
        defer { pruneTombstones() }
        if let tomb = tombstones[key] {
            if revision <= tomb { return .stale }
            tombstones[key] = nil
        }
        if let current = specs[key], current.revision >= revision { return .stale }
        if deleted {
            remove(key)
            return .applied
        }
        guard var record = try? AgentRecord(serializedBytes: value) else { return .corrupt }
        record.revision = revision
        record.spec.id = key
        store(record)
        return .applied
    }

    /// Applies a record this process has just written (its `revision` is the new KV
    /// revision), before the watch brings it.
    public mutating func applyLocal(_ record: AgentRecord) {
        let id = record.spec.id
        if let tomb = tombstones[id], record.revision <= tomb { return }
        if let current = specs[id], current.revision >= record.revision { return }
        var stored = record
        stored.status = .unspecified
        stored.placement = nil
        stored.restartCount = 0
        stored.lastError = nil
        stored.startedAtUnixMs = 0
        stored.statusChangedAtUnixMs = 0
        store(stored)
    }

    /// Removes an agent this process has just deleted at `revision` (the revision of the
    /// record it deleted).
    public mutating func removeLocal(id: String, revision: UInt64) {
        if let current = specs[id], current.revision > revision { return }
        remove(id)
        tombstones[id] = max(tombstones[id] ?? 0, revision)
        statuses[id].map { unindexNode(id, $0) }
        statuses[id] = nil
    }

    /// Applies an entry of the `mesh_status` watch.
    @discardableResult
    public mutating func applyStatus(_ entry: KeyValueEntry) -> Change {
        applyStatus(key: entry.key, value: entry.value, revision: entry.revision, deleted: entry.operation != .put)
    }

    /// Applies a `mesh_status` value (or a delete/purge marker when `deleted`) at `revision`.
    @discardableResult
    public mutating func applyStatus(key: String, value: [UInt8], revision: UInt64, deleted: Bool) -> Change {
        statusRevision = max(statusRevision, revision)
        if let current = statuses[key], current.revision >= revision { return .stale }
        if let old = statuses[key] { unindexNode(key, old) }
        if deleted {
            statuses[key] = nil
            return .applied
        }
        guard var record = try? AgentRecord(serializedBytes: value) else {
            statuses[key] = nil
            return .corrupt
        }
        record.revision = revision
        statuses[key] = record
        if let node = record.placement?.nodeId, !node.isEmpty { nodeIndex[node, default: []].insert(key) }
        return .applied
    }

    // MARK: Reads

    /// The merged record of `id`, or nil.
    public func record(_ id: String) -> AgentRecord? {
        guard let base = specs[id] else { return nil }
        return merged(base)
    }

    /// One page of agents sorted by id.
    /// - Parameters:
    ///   - selector: label requirements (all must hold).
    ///   - node: only agents placed on this node.
    ///   - status: only agents in this (merged) status.
    ///   - cursor: only ids after this one.
    ///   - limit: most records returned (≥ 1).
    ///   - maxBytes: stop before the records' estimated encoded size passes this.
    /// - Returns: the records and the cursor of the next page (nil on the last page).
    public func list(
        selector: LabelSelector = .everything, node: String? = nil, status: AgentStatus? = nil, cursor: String = "",
        limit: Int, maxBytes: Int = .max
    ) -> (records: [AgentRecord], nextCursor: String?) {
        let limit = max(1, limit)
        var records: [AgentRecord] = []
        var bytes = 0
        var nextCursor: String?
        func consider(_ id: String) -> Bool {
            guard let base = specs[id], selector.matches(base.spec.labels) else { return true }
            let record = merged(base)
            if let status, record.status != status { return true }
            if let node, record.placement?.nodeId != node { return true }
            let size = Self.estimatedSize(record)
            if records.count == limit || (!records.isEmpty && bytes + size > maxBytes) {
                nextCursor = records.last?.spec.id
                return false
            }
            records.append(record)
            bytes += size
            return true
        }
        let candidates = candidateIDs(selector: selector, node: node)
        var index = Self.firstIndex(after: cursor, in: candidates)
        while index < candidates.count, consider(candidates[index]) { index += 1 }
        return (records, nextCursor)
    }

    /// A conservative estimate of a record's encoded size, in bytes.
    public static func estimatedSize(_ record: AgentRecord) -> Int {
        var size = 160 + record.spec.id.utf8.count + record.spec.kind.utf8.count + record.spec.group.utf8.count + record.spec.config.count
        for (key, value) in record.spec.labels { size += key.utf8.count + value.utf8.count + 8 }
        if let placement = record.placement { size += placement.nodeId.utf8.count + 24 }
        if let error = record.lastError { size += error.code.utf8.count + error.message.utf8.count + 16 }
        return size
    }

    // MARK: Internals

    private func merged(_ base: AgentRecord) -> AgentRecord {
        var record = base
        guard let status = statuses[base.spec.id] else {
            record.status = .pending
            return record
        }
        record.status = status.status == .unspecified ? .pending : status.status
        record.placement = status.placement
        record.restartCount = status.restartCount
        record.lastError = status.lastError
        record.startedAtUnixMs = status.startedAtUnixMs
        record.statusChangedAtUnixMs = status.statusChangedAtUnixMs
        return record
    }

    /// The sorted ids worth scanning: a node's agents, the smallest label-index set of an
    /// equality or `in` requirement, or every id.
    private func candidateIDs(selector: LabelSelector, node: String?) -> [String] {
        if let node { return (nodeIndex[node] ?? []).filter { specs[$0] != nil }.sorted() }
        var best: Set<String>?
        for requirement in selector.requirements {
            let set: Set<String>
            switch requirement {
            case .equals(let key, let value): set = labelIndex[key]?[value] ?? []
            case .isIn(let key, let values): set = values.reduce(into: Set<String>()) { $0.formUnion(labelIndex[key]?[$1] ?? []) }
            case .exists(let key): set = labelIndex[key]?.values.reduce(into: Set<String>()) { $0.formUnion($1) } ?? []
            default: continue
            }
            if best == nil || set.count < best!.count { best = set }
        }
        if let best, best.count < sortedIDs.count / 2 { return best.sorted() }
        return sortedIDs
    }

    private static func firstIndex(after cursor: String, in ids: [String]) -> Int {
        guard !cursor.isEmpty else { return 0 }
        var low = 0
        var high = ids.count
        while low < high {
            let mid = (low + high) / 2
            if ids[mid] <= cursor { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private mutating func store(_ record: AgentRecord) {
        let id = record.spec.id
        if let old = specs[id] {
            unindexLabels(id, old.spec.labels)
        } else {
            let position = Self.firstIndex(after: id, in: sortedIDs)
            if position == 0 || sortedIDs[position - 1] != id { sortedIDs.insert(id, at: position) }
        }
        specs[id] = record
        for (key, value) in record.spec.labels { labelIndex[key, default: [:]][value, default: []].insert(id) }
    }

    private mutating func remove(_ id: String) {
        guard let old = specs.removeValue(forKey: id) else { return }
        unindexLabels(id, old.spec.labels)
        let position = Self.firstIndex(after: id, in: sortedIDs) - 1
        if position >= 0, position < sortedIDs.count, sortedIDs[position] == id { sortedIDs.remove(at: position) }
    }

    private mutating func unindexLabels(_ id: String, _ labels: [String: String]) {
        for (key, value) in labels {
            labelIndex[key]?[value]?.remove(id)
            if labelIndex[key]?[value]?.isEmpty == true { labelIndex[key]?[value] = nil }
            if labelIndex[key]?.isEmpty == true { labelIndex[key] = nil }
        }
    }

    private mutating func unindexNode(_ id: String, _ status: AgentRecord) {
        guard let node = status.placement?.nodeId, !node.isEmpty else { return }
        nodeIndex[node]?.remove(id)
        if nodeIndex[node]?.isEmpty == true { nodeIndex[node] = nil }
    }

    /// Drops tombstones the watch has passed (bounded: swept when there are many).
    private mutating func pruneTombstones() {
        guard tombstones.count > 256 else { return }
        let floor = agentsRevision
        tombstones = tombstones.filter { $0.value > floor }
    }
}
