import Foundation
import MeshTesting
import Store
import Testing

@Suite("Parameterised round trips", .enabled(if: TestEnvironment.postgresAvailable))
struct RoundTripTests {
    static let schema = Migration(version: 1, name: "values", sql: """
        CREATE TABLE vals (
            id int PRIMARY KEY,
            b boolean, i bigint, small int, d double precision, t text, raw bytea, at timestamptz, u uuid, j jsonb
        )
        """)

    @Test func awkwardStringsSurviveAsData() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Self.schema])
        let strings = [
            "O'Brien said \"hi\" \\ back\\slash",
            "'); DROP TABLE vals; --",
            "1 OR 1=1; SELECT pg_sleep(10)",
            "$1 $2 ? :name %s",
            "🦊🚀 emoji, 漢字かなカナ, ünïcödé, עברית, \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
            "",
            " leading and trailing ",
            "line\nbreak\ttab\r\n",
        ]
        for (index, string) in strings.enumerated() {
            try await store.execute("INSERT INTO vals (id, t) VALUES ($1, $2)", [.int(Int64(index)), .text(string)])
        }
        let rows = try await store.query("SELECT id, t, length(t) AS chars FROM vals ORDER BY id")
        #expect(try rows.map { try $0.decode("t", String.self) } == strings)
        #expect(try rows.map { try $0.decode("chars", Int.self) } == strings.map { $0.unicodeScalars.count })
        // Still there, and lookups by an injection-looking value match exactly one row.
        let hit = try await store.query("SELECT id FROM vals WHERE t = $1", [.text(strings[1])])
        #expect(try hit.map { try $0.decode("id", Int.self) } == [1])
        // An echo through the server without a table.
        let echoed = try await store.query("SELECT $1 AS s", [.text(strings[4])])
        #expect(try echoed[0].decode("s", String.self) == strings[4])
    }

    @Test func everySupportedTypeAndNull() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Self.schema])
        let when = Date(timeIntervalSince1970: 1_718_000_000.123456)
        let uuid = UUID()
        let allBytes = (0...255).map { UInt8($0) }
        try await store.execute(
            "INSERT INTO vals (id, b, i, small, d, t, raw, at, u, j) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [1, true, .int(.max), .int(Int64(Int32.min)), .double(-1234.5e-300), "text", .bytes(allBytes), .timestamp(when), .uuid(uuid),
             "{\"k\": [1, 2]}"])
        try await store.execute(
            "INSERT INTO vals (id, b, i, small, d, t, raw, at, u, j) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [2, nil, nil, nil, nil, nil, nil, nil, nil, nil])
        try await store.execute(
            "INSERT INTO vals (id, b, i, d, raw, at) VALUES ($1, $2, $3, $4, $5, $6)",
            [3, false, .int(.min), .double(.pi), .bytes([]), .timestamp(Date(timeIntervalSince1970: -86_400 * 365 * 100))])

        let rows = try await store.query("SELECT * FROM vals ORDER BY id")
        #expect(rows.count == 3)
        let full = rows[0]
        #expect(try full.decode("b", Bool.self) == true)
        #expect(try full.decode("i", Int64.self) == .max)
        #expect(try full.decode("small", Int32.self) == .min)
        #expect(try full.decode("d", Double.self) == -1234.5e-300)
        #expect(try full.decode("t", String.self) == "text")
        #expect(try full.decode("raw", [UInt8].self) == allBytes)
        #expect(try full.decode("at", Date.self) == when)
        #expect(try full.decode("u", UUID.self) == uuid)
        #expect(try full.decode("j", String.self) == "{\"k\": [1, 2]}")
        #expect(full["i"] == .int(.max))
        #expect(full["raw"] == .bytes(allBytes))
        #expect(full["u"] == .uuid(uuid))
        #expect(full["missing"] == nil)

        let empty = rows[1]
        for column in ["b", "i", "small", "d", "t", "raw", "at", "u", "j"] {
            #expect(empty.isNull(column))
            #expect(empty[column] == .null)
        }
        #expect(try empty.decode("t", String?.self) == nil)
        #expect(try empty.decode("i", Int?.self) == nil)
        #expect(try empty.decode("at", Date?.self) == nil)
        let nullError = await storeError { _ = try empty.decode("t", String.self) }
        #expect(nullError?.code == .decoding)

        let other = rows[2]
        #expect(try other.decode("b", Bool.self) == false)
        #expect(try other.decode("i", Int.self) == .min)
        #expect(try other.decode("d", Double.self) == .pi)
        #expect(try other.decode("raw", [UInt8].self) == [])
        #expect(try other.decode("at", Date.self) == Date(timeIntervalSince1970: -86_400 * 365 * 100))

        // Typed decoding errors name the column, never the value.
        let narrow = await storeError { _ = try full.decode("i", Int32.self) }
        #expect(narrow?.code == .decoding)
        #expect(!(narrow.map { "\($0)" } ?? "").contains(String(Int64.max)))

        // Parameters are typed: arithmetic on them works without casts.
        let sum = try await store.query("SELECT $1 + $2 AS s, $3 * 2 AS d, NOT $4 AS n", [40, 2, 1.25, true])
        #expect(try sum[0].decode("s", Int.self) == 42)
        #expect(try sum[0].decode("d", Double.self) == 2.5)
        #expect(try sum[0].decode("n", Bool.self) == false)
        let special = try await store.query("SELECT $1::float8 AS a, $2::float8 AS b", [.double(.infinity), .double(.nan)])
        #expect(try special[0].decode("a", Double.self) == .infinity)
        #expect(try special[0].decode("b", Double.self).isNaN)
    }

    @Test func largeValuesRoundTrip() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let store = fixture.store
        try await store.migrate([Self.schema])
        let text = String(repeating: "ab'c\"😀漢", count: 150_000)  // > 2 MB of UTF-8
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(1 << 20) + 17).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try await store.execute("INSERT INTO vals (id, t, raw) VALUES ($1, $2, $3)", [1, .text(text), .bytes(bytes)])
        let rows = try await store.query("SELECT t, raw, octet_length(raw) AS n FROM vals WHERE id = $1", [1])
        #expect(text.utf8.count > 1 << 20)
        #expect(try rows[0].decode("t", String.self) == text)
        #expect(try rows[0].decode("raw", [UInt8].self) == bytes)
        #expect(try rows[0].decode("n", Int.self) == bytes.count)
    }

    @Test func textWithNulIsRejectedBeforeSending() async throws {
        let fixture = try await Fixture.start()
        defer { fixture.tearDown() }
        let error = await storeError { _ = try await fixture.store.query("SELECT $1::text", [.text("a\u{0}b")]) }
        #expect(error?.code == .invalidArgument)
        // The pool is fine afterwards.
        #expect(try await fixture.store.query("SELECT 1 AS one")[0].decode("one", Int.self) == 1)
    }
}
