import Foundation
import Logging
import MeshTesting
import Store
import Testing

@Suite("Errors, pool and recovery", .enabled(if: TestEnvironment.postgresAvailable))
struct ErrorAndPoolTests {
    @Test func uniqueViolationIsTypedAndLeaksNothing() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Migration(version: 1, name: "users", sql: "CREATE TABLE users (name text PRIMARY KEY, secret text)")])
        let sql = "INSERT INTO users (name, secret) VALUES ($1, $2)"
        try await store.execute(sql, ["alice", "hunter2-secret-value"])
        let error = await storeError { try await store.execute(sql, ["alice", "hunter2-secret-value"]) }
        #expect(error?.code == .uniqueViolation)
        #expect(error?.sqlState == "23505")
        #expect(error?.constraint == "users_pkey")
        #expect(error?.operation == "PQexecParams")
        for text in [error.map { "\($0)" } ?? "", error.map { String(reflecting: $0) } ?? ""] {
            #expect(!text.contains("INSERT"))
            #expect(!text.contains("users (name"))
            #expect(!text.contains("alice"))
            #expect(!text.contains("hunter2"))
        }
        #expect(error.map { "\($0)" }?.contains("uniqueViolation") == true)
        #expect(error?.serverMessage?.contains("duplicate key") == true)

        // A syntax error: the description carries the SQLSTATE, not the statement.
        let syntax = await storeError { _ = try await store.query("SELEKT secret FROM users WHERE name = $1", ["bob-the-value"]) }
        #expect(syntax?.code == .queryFailed)
        #expect(syntax?.sqlState == "42601")
        let description = syntax.map { "\($0)" } ?? ""
        #expect(!description.contains("SELEKT") && !description.contains("bob-the-value") && !description.contains("secret"))
    }

    @Test func connectionStringNeverAppearsInErrorsOrConfiguration() async throws {
        let configuration = StoreConfiguration(
            connectionString: "host=/nonexistent-dir port=1 dbname=x user=u password=topsecret-pw connect_timeout=2", poolSize: 1)
        #expect(!"\(configuration)".contains("topsecret-pw"))
        let store = Store(configuration: configuration, logger: Logger(label: "mesh.store.test"))
        defer { store.close() }
        let error = await storeError { try await store.ping() }
        #expect(error?.code == .connectionFailed)
        #expect(!"\(error.map { "\($0)" } ?? "")".contains("topsecret-pw"))
        #expect(!(error.map { String(reflecting: $0) } ?? "").contains("topsecret-pw"))

        let garbled = Store(configuration: StoreConfiguration(connectionString: "host=x password=top secret-pw"), logger: Logger(label: "t"))
        defer { garbled.close() }
        let parse = await storeError { try await garbled.ping() }
        #expect(parse?.code == .invalidArgument)
        #expect(!(parse.map { String(reflecting: $0) } ?? "").contains("secret-pw"))
    }

    @Test func exhaustedPoolTimesOutThenRecovers() async throws {
        let fixture = try await Fixture.start(poolSize: 2, acquireTimeout: .milliseconds(300))
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.withConnection { first in
            try await store.withConnection { second in
                #expect(first.backendPID != second.backendPID)
                let error = await storeError { _ = try await store.query("SELECT 1") }
                #expect(error?.code == .poolTimeout)
                #expect(error?.code == .poolExhausted)
                let statistics = store.statistics
                #expect(statistics.size == 2 && statistics.inUse == 2 && statistics.idle == 0 && statistics.waiting == 0)
            }
        }
        #expect(try await store.query("SELECT 1 AS one")[0].decode("one", Int.self) == 1)
        #expect(store.statistics.idle >= 1)
    }

    @Test func waitersAreServedWhenConnectionsFreeUp() async throws {
        let fixture = try await Fixture.start(poolSize: 2, acquireTimeout: .seconds(30))
        defer { fixture.tearDown() }
        let store = fixture.store
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<40 {
                group.addTask {
                    try await store.query("SELECT $1 + 0 AS v, pg_sleep(0.005)", [.int(Int64(index))])[0].decode("v", Int.self)
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(results.sorted() == Array(0..<40))
        let statistics = store.statistics
        #expect(statistics.size <= 2)
        #expect(statistics.waiting == 0 && statistics.inUse == 0)
    }

    @Test func cancelledWaiterLeavesTheQueue() async throws {
        let fixture = try await Fixture.start(poolSize: 1, acquireTimeout: .seconds(60))
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.withConnection { _ in
            let waiter = Task { try await store.query("SELECT 1") }
            _ = await TestEnvironment.waitUntil(timeout: .seconds(5)) { store.statistics.waiting == 1 }
            waiter.cancel()
            let error = await storeError { _ = try await waiter.value }
            #expect(error?.code == .cancelled)
            #expect(store.statistics.waiting == 0)
        }
        try await store.ping()
    }

    @Test func serverStopFailsPromptlyAndRestartRecovers() async throws {
        let fixture = try await Fixture.start(poolSize: 3, acquireTimeout: .seconds(2))
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Migration(version: 1, name: "t", sql: "CREATE TABLE t (id int)")])
        // Open every connection so all of them go stale.
        try await store.withConnection { _ in
            try await store.withConnection { _ in
                try await store.withConnection { connection in _ = try await connection.query("SELECT 1") }
            }
        }
        #expect(store.statistics.size == 3)

        fixture.server.stopKeepingData()
        for _ in 0..<3 {
            let error = await storeError { try await store.execute("INSERT INTO t VALUES (1)") }
            #expect(error?.code == .connectionFailed || error?.code == .connectionLost)
        }
        let pingError = await storeError { try await store.ping() }
        #expect(pingError?.code == .connectionFailed)

        try await fixture.server.restart()
        try await store.execute("INSERT INTO t VALUES ($1)", [2])
        #expect(try await store.query("SELECT count(*) AS n FROM t")[0].decode("n", Int.self) == 1)
        #expect(store.statistics.reconnects >= 1)
    }

    @Test func serverCrashThenRestartRecovers() async throws {
        let fixture = try await Fixture.start(poolSize: 2, acquireTimeout: .seconds(2))
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.ping()
        fixture.server.kill()
        let error = await storeError { try await store.ping() }
        #expect(error?.code == .connectionFailed || error?.code == .connectionLost)
        #expect(error?.isTransient == true)
        try await fixture.server.restart()
        try await store.ping()
        #expect(try await store.query("SELECT 2 AS two")[0].decode("two", Int.self) == 2)
    }

    @Test func terminatedBackendIsReplaced() async throws {
        let fixture = try await Fixture.start(poolSize: 1)
        defer { fixture.tearDown() }
        let store = fixture.store
        let pid = try await store.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", Int.self)
        // Terminate it from a second store, then use the first again.
        let admin = Fixture.makeStore(fixture.server, poolSize: 1)
        defer { admin.close() }
        #expect(try await admin.query("SELECT pg_terminate_backend($1::int) AS ok", [.int(Int64(pid))])[0].decode("ok", Bool.self))
        let gone = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            (try? await admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1::int", [.int(Int64(pid))])[0]
                .decode("n", Int.self)) == 0
        }
        #expect(gone)
        // Usually the pool notices the closed session before handing it out; when the
        // server's close has not reached this side yet, the first query fails with a
        // transient connectionLost and the broken connection is replaced for the next.
        let next: Int
        do {
            next = try await store.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", Int.self)
        } catch {
            #expect(error.code == .connectionLost && error.isTransient)
            next = try await store.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", Int.self)
        }
        #expect(next != pid)
        #expect(store.statistics.discarded == 1)
    }

    @Test func idleHealthCheckDropsDeadConnections() async throws {
        let fixture = try await Fixture.start(poolSize: 2, healthCheckInterval: .milliseconds(100))
        defer { fixture.tearDown() }
        let store = fixture.store
        let pid = try await store.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", Int.self)
        let admin = Fixture.makeStore(fixture.server, poolSize: 1)
        defer { admin.close() }
        try await admin.execute("SELECT pg_terminate_backend($1::int)", [.int(Int64(pid))])
        let dropped = await TestEnvironment.waitUntil(timeout: .seconds(10)) { store.statistics.discarded == 1 }
        #expect(dropped)
        #expect(store.statistics.size == 0)
        try await store.ping()
    }

    @Test func noticesGoToTheLoggerAtDebug() async throws {
        let storage = CapturingLogHandler.Storage()
        let logger = Logger(label: "mesh.store.test") { _ in CapturingLogHandler(storage: storage) }
        let fixture = try await Fixture.start(logger: logger)
        defer { fixture.tearDown() }
        try await fixture.store.execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
        let notices = storage.all.filter { $0.1 == "postgres notice" }
        #expect(notices.count == 1)
        #expect(notices.first?.0 == .debug)
        #expect(notices.first?.2?["mesh.store.notice"].map { "\($0)" }?.contains("hello from plpgsql") == true)
    }

    @Test func closedStoreRefusesWork() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        try await fixture.store.ping()
        fixture.store.close()
        let error = await storeError { try await fixture.store.ping() }
        #expect(error?.code == .closed)
        #expect(fixture.store.statistics.size == 0)
    }
}
