import Foundation
import MeshTesting
import Store
import Testing

@Suite("Transactions and batch inserts", .enabled(if: TestEnvironment.postgresAvailable))
struct TransactionTests {
    struct Boom: Error {}

    @Test func commitAndRollback() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Migration(version: 1, name: "t", sql: "CREATE TABLE t (id int PRIMARY KEY, v text)")])

        let returned = try await store.transaction { connection in
            try await connection.execute("INSERT INTO t VALUES ($1, $2)", [1, "one"])
            try await connection.execute("INSERT INTO t VALUES ($1, $2)", [2, "two"])
            return try await connection.query("SELECT count(*) AS n FROM t")[0].decode("n", Int.self)
        }
        #expect(returned == 2)
        #expect(try await store.query("SELECT count(*) AS n FROM t")[0].decode("n", Int.self) == 2)

        await #expect(throws: Boom.self) {
            try await store.transaction { connection in
                try await connection.execute("INSERT INTO t VALUES ($1, $2)", [3, "three"])
                throw Boom()
            }
        }
        let afterThrow = await storeError {
            try await store.transaction { connection in
                try await connection.execute("INSERT INTO t VALUES ($1, $2)", [4, "four"])
                try await connection.execute("INSERT INTO t VALUES ($1, $2)", [1, "duplicate"])
            }
        }
        #expect(afterThrow?.code == .uniqueViolation)
        // A failed statement the body swallowed still rolls everything back — and says so.
        let swallowed = await storeError {
            try await store.transaction { connection in
                try await connection.execute("INSERT INTO t VALUES ($1, $2)", [5, "five"])
                _ = try? await connection.execute("INSERT INTO t VALUES ($1, $2)", [1, "duplicate"])
            }
        }
        #expect(swallowed?.code == .queryFailed)
        let ids = try await store.query("SELECT id FROM t ORDER BY id").map { try $0.decode("id", Int.self) }
        #expect(ids == [1, 2])
        let statistics = store.statistics
        #expect(statistics.inUse == 0)
    }

    @Test func serializableConflictIsReported() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Migration(version: 1, name: "acct", sql: "CREATE TABLE acct (id int PRIMARY KEY, v int); INSERT INTO acct VALUES (1, 0);")])
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let (go, goContinuation) = AsyncStream<Void>.makeStream()
        let first = Task {
            try await store.transaction(isolation: .serializable) { connection in
                _ = try await connection.query("SELECT v FROM acct WHERE id = 1")
                readyContinuation.yield()
                for await _ in go { break }
                try await connection.execute("UPDATE acct SET v = v + 1 WHERE id = 1")
            }
        }
        for await _ in ready { break }
        try await store.transaction(isolation: .serializable) { connection in
            try await connection.execute("UPDATE acct SET v = v + 10 WHERE id = 1")
        }
        goContinuation.yield()
        let error = await storeError { try await first.value }
        #expect(error?.code == .serializationFailure)
        #expect(error?.sqlState == "40001")
        #expect(error?.isTransient == true)
    }

    @Test func batchInsertTwentyThousandRowsThenUpsert() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Migration(version: 1, name: "events", sql: """
            CREATE TABLE events (id bigint PRIMARY KEY, agent text NOT NULL, payload bytea, at timestamptz, note text)
            """)])
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let rows: [[PostgresValue]] = (0..<20_000).map { (index: Int) -> [PostgresValue] in
            let note: PostgresValue = index % 3 == 0 ? .null : .text("n'\(index)")
            return [.int(Int64(index)), .text("agent-\(index % 97)"), .bytes([UInt8(index & 0xFF), 0]), .timestamp(now), note]
        }
        let inserted = try await store.batchInsert(table: "events", columns: ["id", "agent", "payload", "at", "note"], rows: rows)
        #expect(inserted == 20_000)
        #expect(try await store.query("SELECT count(*) AS n FROM events")[0].decode("n", Int.self) == 20_000)

        // Upsert: the upper half exists (updated), 10 000 more are new.
        let upserts: [[PostgresValue]] = (10_000..<30_000).map { index in
            [.int(Int64(index)), .text("moved"), nil, .timestamp(now), "upserted"]
        }
        let touched = try await store.batchInsert(
            table: "public.events", columns: ["id", "agent", "payload", "at", "note"], rows: upserts,
            onConflict: "(id) DO UPDATE SET agent = EXCLUDED.agent, note = EXCLUDED.note")
        #expect(touched == 20_000)
        let summary = try await store.query("""
            SELECT count(*) AS total, count(*) FILTER (WHERE agent = 'moved') AS moved,
                   count(*) FILTER (WHERE note IS NULL) AS null_notes
            FROM events
            """)
        #expect(try summary[0].decode("total", Int.self) == 30_000)
        #expect(try summary[0].decode("moved", Int.self) == 20_000)
        #expect(try summary[0].decode("null_notes", Int.self) == (0..<10_000).filter { $0 % 3 == 0 }.count)
        let sample = try await store.query("SELECT payload, note FROM events WHERE id = $1", [257])
        #expect(try sample[0].decode("payload", [UInt8].self) == [1, 0])
        #expect(try sample[0].decode("note", String?.self) == "n'257")

        let skipped = try await store.batchInsert(
            table: "events", columns: ["id", "agent"], rows: (29_990..<30_010).map { [.int(Int64($0)), "late"] },
            onConflict: "DO NOTHING")
        #expect(skipped == 10)
    }

    /// Values travel as array literals: quotes, backslashes, braces, commas, the text
    /// "NULL", empty strings and bytes, every type, into columns of other types (integer,
    /// jsonb) as a `VALUES` insert would.
    @Test func batchInsertRoundTripsAwkwardValues() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Migration(version: 1, name: "odd", sql: """
            CREATE TABLE odd (id integer PRIMARY KEY, t text, b bytea, j jsonb, f double precision, ok boolean, u uuid,
                              at timestamptz, v varchar(16))
            """)])
        let id = UUID()
        let at = Date(timeIntervalSince1970: 1_700_000_000.123456)
        let texts = [#"a "quoted" \ {x,y}"#, "NULL", "", "é 😀 \t", "\\x00"]
        let rows: [[PostgresValue]] = texts.enumerated().map { index, text in
            [.int(Int64(index)), .text(text), .bytes(index == 2 ? [] : [0, 0x22, 0x5c, 0xff]), .text(#"{"k": "v\""}"#), .double(-1.25),
             .bool(index % 2 == 0), .uuid(id), .timestamp(at), .text("v,\(index)")]
        } + [[.int(99), .null, .null, .null, .null, .null, .null, .null, .null]]
        let columns = ["id", "t", "b", "j", "f", "ok", "u", "at", "v"]
        #expect(try await store.batchInsert(table: "odd", columns: columns, rows: rows) == rows.count)
        for (index, text) in texts.enumerated() {
            let row = try await store.query("SELECT t, b, j->>'k' AS k, f, ok, u::text AS u, at, v FROM odd WHERE id = $1", [.int(Int64(index))])[0]
            #expect(try row.decode("t", String.self) == text)
            #expect(try row.decode("b", [UInt8].self) == (index == 2 ? [] : [0, 0x22, 0x5c, 0xff]))
            #expect(try row.decode("k", String.self) == #"v""#)
            #expect(try row.decode("f", Double.self) == -1.25)
            #expect(try row.decode("ok", Bool.self) == (index % 2 == 0))
            #expect(try row.decode("u", String.self) == id.uuidString.lowercased())
            #expect(abs(try row.decode("at", Date.self).timeIntervalSince(at)) < 0.000_002)
            #expect(try row.decode("v", String.self) == "v,\(index)")
        }
        let empty = try await store.query("SELECT count(*) AS n FROM odd WHERE id = 99 AND t IS NULL AND b IS NULL AND j IS NULL AND at IS NULL")
        #expect(try empty[0].decode("n", Int.self) == 1)
        let unknown = await storeError { try await store.batchInsert(table: "odd", columns: ["id", "nope"], rows: [[1, 2]]) }
        #expect(unknown?.code == .invalidArgument)
        try await store.execute("CREATE TABLE listed (id integer PRIMARY KEY, tags text[])")
        let array = await storeError { try await store.batchInsert(table: "listed", columns: ["id", "tags"], rows: [[1, "{a,b}"]]) }
        #expect(array?.code == .invalidArgument)
        let noTable = await storeError { try await store.batchInsert(table: "missing", columns: ["id"], rows: [[1]]) }
        #expect(noTable?.code == .queryFailed)
    }

    @Test func batchInsertIsAllOrNothingAndValidatesInput() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Migration(version: 1, name: "kv", sql: "CREATE TABLE kv (k int PRIMARY KEY, v text)")])
        // The duplicate sits in the third chunk: earlier chunks must roll back too.
        var rows: [[PostgresValue]] = (0..<25_000).map { [.int(Int64($0)), "v"] }
        rows.append([.int(3), "dup"])
        let error = await storeError { try await store.batchInsert(table: "kv", columns: ["k", "v"], rows: rows) }
        #expect(error?.code == .uniqueViolation)
        #expect(try await store.query("SELECT count(*) AS n FROM kv")[0].decode("n", Int.self) == 0)

        for (table, columns) in [("kv; DROP TABLE kv", ["k"]), ("kv", ["k\" OR 1=1"]), ("a.b.c", ["k"]), ("", ["k"])] {
            let bad = await storeError { try await store.batchInsert(table: table, columns: columns, rows: [[1]]) }
            #expect(bad?.code == .invalidArgument)
        }
        let ragged = await storeError { try await store.batchInsert(table: "kv", columns: ["k", "v"], rows: [[1, "x"], [2]]) }
        #expect(ragged?.code == .invalidArgument)
        #expect(try await store.batchInsert(table: "kv", columns: ["k"], rows: []) == 0)
    }
}
