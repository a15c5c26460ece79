import Foundation
import MeshTesting
import Store
import Testing

@Suite("Migrations", .enabled(if: TestEnvironment.postgresAvailable))
struct MigrationTests {
    static let base = [
        Migration(version: 1, name: "create_agents", sql: "CREATE TABLE agents (id text PRIMARY KEY, node text)"),
        Migration(version: 2, name: "create_counter", sql: """
            CREATE TABLE counter (n int NOT NULL);
            INSERT INTO counter VALUES (1);
            """),
    ]

    @Test func applyThenReapplyIsANoOp() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store

        try await store.migrate(Self.base)
        let first = try await store.query("SELECT version, name, applied_at, checksum FROM schema_migrations ORDER BY version")
        #expect(try first.map { try $0.decode("version", Int.self) } == [1, 2])
        #expect(try first.map { try $0.decode("checksum", String.self) } == Self.base.map(\.checksum))

        try await store.migrate(Self.base)
        try await store.migrate(Self.base.reversed())
        let again = try await store.query("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        #expect(try again.map { try $0.decode("applied_at", Date.self) } == first.map { try $0.decode("applied_at", Date.self) })
        #expect(try await store.query("SELECT count(*) AS n FROM counter")[0].decode("n", Int.self) == 1)

        // A later version applies alone.
        let next = Self.base + [Migration(version: 3, name: "agents_labels", sql: "ALTER TABLE agents ADD COLUMN labels text")]
        try await store.migrate(next)
        #expect(try await store.query("SELECT count(*) AS n FROM schema_migrations")[0].decode("n", Int.self) == 3)
        try await store.execute("INSERT INTO agents (id, labels) VALUES ($1, $2)", ["a1", "x"])
        #expect(try await store.query("SELECT count(*) AS n FROM counter")[0].decode("n", Int.self) == 1)
    }

    @Test func concurrentMigrateFromTwoStoresIsSafe() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let other = Fixture.makeStore(fixture.server)
        defer { other.close() }
        // Non-idempotent statements: applying any migration twice would fail or double the row.
        let migrations = Self.base + (3...12).map {
            Migration(version: $0, name: "step_\($0)", sql: "CREATE TABLE step_\($0) (id int); UPDATE counter SET n = n + 1;")
        }
        async let a: Void = fixture.store.migrate(migrations)
        async let b: Void = other.migrate(migrations)
        async let c: Void = other.migrate(migrations)
        _ = try await (a, b, c)
        #expect(try await fixture.store.query("SELECT n FROM counter")[0].decode("n", Int.self) == 11)
        #expect(try await other.query("SELECT count(*) AS n FROM schema_migrations")[0].decode("n", Int.self) == 12)
    }

    @Test func changedChecksumOfAppliedMigrationIsAnError() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        try await fixture.store.migrate(Self.base)
        let edited = [Self.base[0], Migration(version: 2, name: "create_counter", sql: "CREATE TABLE counter (n bigint)")]
        let error = await storeError { try await fixture.store.migrate(edited + [Migration(version: 3, name: "later", sql: "CREATE TABLE later (x int)")]) }
        #expect(error?.code == .migrationFailed)
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("checksum"))
        #expect(text.contains("2"))
        #expect(!text.contains("CREATE TABLE"))
        // Nothing after the mismatch was applied.
        #expect(try await fixture.store.query("SELECT to_regclass('later') IS NULL AS missing")[0].decode("missing", Bool.self))
    }

    @Test func failingMigrationRollsBackAndIsNotRecorded() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let broken = Self.base + [
            Migration(version: 3, name: "half_done", sql: "CREATE TABLE half (id int); SELECT no_such_function();")
        ]
        let error = await storeError { try await fixture.store.migrate(broken) }
        #expect(error?.code == .migrationFailed)
        #expect(error?.sqlState == "42883")
        #expect(!(error.map { "\($0)" } ?? "").contains("no_such_function"))
        let rows = try await fixture.store.query("SELECT version FROM schema_migrations ORDER BY version")
        #expect(try rows.map { try $0.decode("version", Int.self) } == [1, 2])
        #expect(try await fixture.store.query("SELECT to_regclass('half') IS NULL AS missing")[0].decode("missing", Bool.self))
        // The lock was released: a fixed list applies.
        try await fixture.store.migrate(Self.base + [Migration(version: 3, name: "half_done", sql: "CREATE TABLE half (id int)")])
    }

    @Test func duplicateVersionsAreRejected() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let error = await storeError { try await fixture.store.migrate(Self.base + [Migration(version: 1, name: "again", sql: "SELECT 1")]) }
        #expect(error?.code == .invalidArgument)
    }
}
