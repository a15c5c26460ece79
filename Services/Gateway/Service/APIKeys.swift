public import Foundation
public import Logging
import MeshCore
public import Store
import Synchronization

/// An authenticated caller: the key's id, name and role (never its secret).
public struct Principal: Sendable, Hashable {
    public var keyID: String
    public var name: String
    public var role: Role
}

/// A key as listed (`GET /api/v1/keys`): everything but the secret.
public struct APIKeyInfo: Sendable, Hashable {
    public var id: String
    public var name: String
    public var role: Role
    public var createdAt: Date
    public var createdBy: String?
    public var revokedAt: Date?
}

/// API keys: creation (the secret is returned once and stored only as its SHA-256),
/// lookup by secret with an in-memory cache, listing and revocation.
///
/// A secret is `mesh_` followed by 64 hex digits (32 random bytes from the system's
/// generator), so an unsalted SHA-256 is enough: nothing guessable is hashed. Lookups are
/// cached for ``cacheTTL`` — found keys and unknown secrets alike (the latter bounded) — so
/// the request path does not reach PostgreSQL for every request; a revoked key therefore
/// stops working on every gateway within that TTL (on the gateway that revoked it, at once).
public final class APIKeyStore: Sendable {
    /// How long a lookup result is trusted.
    public let cacheTTL: Duration
    /// Most cached lookups; past it the cache is cleared (misses refill it).
    public let maxCached: Int
    private let store: Store
    private let cache = Mutex<[String: (principal: Principal?, expires: ContinuousClock.Instant)]>([:])

    /// - Parameters:
    ///   - store: the gateway's Postgres pool.
    ///   - cacheTTL: lifetime of a cached lookup.
    public init(store: Store, cacheTTL: Duration = .seconds(5), maxCached: Int = 10_000) {
        self.store = store
        self.cacheTTL = cacheTTL
        self.maxCached = maxCached
    }

    /// The prefix of every secret.
    public static let secretPrefix = "mesh_"

    /// A fresh secret: `mesh_` + 64 hex digits from the system's secure generator.
    public static func makeSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return secretPrefix + String((0..<64).map { _ in digits[Int(generator.next() & 0x0f)] })
    }

    /// The stored form of a secret: its SHA-256 as hex.
    public static func hash(secret: String) -> String { SHA256.hex(Array(secret.utf8)) }

    /// Whether `text` has the shape of a secret (checked before hashing or a lookup).
    public static func looksLikeSecret(_ text: some StringProtocol) -> Bool {
        text.utf8.count == secretPrefix.utf8.count + 64 && text.hasPrefix(secretPrefix)
            && text.utf8.dropFirst(secretPrefix.utf8.count).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The key a secret belongs to, or nil for an unknown or revoked one.
    /// - Throws: `StoreError` when PostgreSQL cannot be asked (and the answer is not cached).
    public func principal(secret: String) async throws -> Principal? {
        guard Self.looksLikeSecret(secret) else { return nil }
        let hash = Self.hash(secret: secret)
        if let hit = freshLookup(hash) { return hit.principal }
        let now = ContinuousClock.now
        let rows = try await store.query(
            "SELECT id, name, role FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL", [.text(hash)])
        var principal: Principal?
        if let row = rows.first, let role = Role(rawValue: try row.decode("role", String.self)) {
            principal = Principal(keyID: try row.decode("id"), name: try row.decode("name"), role: role)
        }
        cache.withLock { cache in
            if cache.count >= maxCached { cache.removeAll(keepingCapacity: true) }
            cache[hash] = (principal, now + cacheTTL)
        }
        return principal
    }

    /// The key of `secret` when the cache holds a fresh lookup that found it; nil when
    /// the secret is unknown or not cached (``principal(secret:)`` then decides).
    public func cachedPrincipal(secret: String) -> Principal? {
        guard Self.looksLikeSecret(secret) else { return nil }
        return freshLookup(Self.hash(secret: secret))?.principal
    }

    /// The cached lookup of a secret's hash while it is fresh (its principal nil for an unknown secret).
    private func freshLookup(_ hash: String) -> (principal: Principal?, expires: ContinuousClock.Instant)? {
        guard let hit = cache.withLock({ $0[hash] }), hit.expires > .now else { return nil }
        return hit
    }

    /// Creates a key.
    /// - Returns: the key and its secret (shown once, never stored).
    public func create(name: String, role: Role, createdBy: String?) async throws -> (info: APIKeyInfo, secret: String) {
        let secret = Self.makeSecret()
        let id = NodeID.random(prefix: "key").rawValue
        let rows = try await store.query(
            "INSERT INTO api_keys (id, name, role, secret_hash, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
            [.text(id), .text(name), .text(role.rawValue), .text(Self.hash(secret: secret)), createdBy.map { .text($0) } ?? .null])
        let createdAt: Date = try rows.first?.decode("created_at") ?? Date()
        return (APIKeyInfo(id: id, name: name, role: role, createdAt: createdAt, createdBy: createdBy, revokedAt: nil), secret)
    }

    /// Every key, newest first (at most `limit`).
    public func list(limit: Int = 1_000) async throws -> [APIKeyInfo] {
        let rows = try await store.query(
            "SELECT id, name, role, created_at, created_by, revoked_at FROM api_keys ORDER BY created_at DESC, id LIMIT $1",
            [.int(Int64(limit))])
        return try rows.map { row in
            APIKeyInfo(
                id: try row.decode("id"), name: try row.decode("name"),
                role: Role(rawValue: try row.decode("role", String.self)) ?? .viewer, createdAt: try row.decode("created_at"),
                createdBy: try row.decode("created_by"), revokedAt: try row.decode("revoked_at"))
        }
    }

    /// Revokes a key; it stops working at once on this gateway (the cache is cleared).
    /// - Returns: false when there is no such active key.
    public func revoke(id: String) async throws -> Bool {
        let changed = try await store.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", [.text(id)])
        cache.withLock { $0.removeAll() }
        return changed > 0
    }

    /// Creates an admin key named `bootstrap` when no active admin key exists, and writes
    /// its secret to `file` (mode 0600). Runs under an advisory lock so concurrently
    /// starting gateways create one key.
    /// - Returns: the new key's id, or nil when an admin key existed already.
    public func bootstrapAdmin(file: String, logger: Logger) async throws -> String? {
        try await store.withConnection { connection in
            _ = try await connection.execute("SELECT pg_advisory_lock($1)", [.int(Self.bootstrapLockKey)])
            do {
                let id = try await Self.bootstrapLocked(connection, file: file, logger: logger)
                _ = try? await connection.execute("SELECT pg_advisory_unlock($1)", [.int(Self.bootstrapLockKey)])
                return id
            } catch {
                _ = try? await connection.execute("SELECT pg_advisory_unlock($1)", [.int(Self.bootstrapLockKey)])
                throw error
            }
        }
    }

    private static func bootstrapLocked(_ connection: Store.Connection, file: String, logger: Logger) async throws -> String? {
        let existing = try await connection.query("SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1")
        guard existing.isEmpty else { return nil }
        let secret = makeSecret()
        let id = NodeID.random(prefix: "key").rawValue
        try writeSecretFile(secret, to: file)
        _ = try await connection.execute(
            "INSERT INTO api_keys (id, name, role, secret_hash, created_by) VALUES ($1, 'bootstrap', 'admin', $2, 'gateway')",
            [.text(id), .text(hash(secret: secret))])
        logger.notice("created the bootstrap admin key", metadata: ["mesh.key.id": "\(id)", "mesh.key.file": "\(file)"])
        return id
    }

    static let bootstrapLockKey: Int64 = 0x6D65_7368_6B65_7973  // "meshkeys"

    /// Writes `secret` to `path` readable by the owner only (0600), replacing the file.
    static func writeSecretFile(_ secret: String, to path: String) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw MeshError(.internalError, "cannot create \(temporary)") }
        let bytes = Array((secret + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw MeshError(.internalError, "cannot write \(path)")
        }
    }
}
