import Foundation
@testable import Store
import Testing

/// Pure logic, no server.
@Suite("Store without a server")
struct StoreUnitTests {
    @Test(arguments: [
        (0.0, "1970-01-01 00:00:00.000000+00"),
        (1_718_000_000.123456, "2024-06-10 06:13:20.123456+00"),
        (-1.5, "1969-12-31 23:59:58.500000+00"),
        (951_782_400, "2000-02-29 00:00:00.000000+00"),
    ])
    func timestampFormat(seconds: Double, text: String) throws {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(Timestamp.format(date) == text)
        let parsed = Array(text.utf8).withUnsafeBytes { Timestamp.parse($0) }
        #expect(parsed == date)
    }

    @Test func timestampParsesServerStyles() {
        func parse(_ text: String) -> Date? { Array(text.utf8).withUnsafeBytes { Timestamp.parse($0) } }
        #expect(parse("2024-06-10 08:13:20.5+02") == Date(timeIntervalSince1970: 1_718_000_000.5))
        #expect(parse("2024-06-10 01:43:20-04:30") == Date(timeIntervalSince1970: 1_718_000_000))
        #expect(parse("2024-06-10 06:13:20") == Date(timeIntervalSince1970: 1_718_000_000))
        #expect(parse("2024-06-10") == Date(timeIntervalSince1970: 1_717_977_600))
        #expect(parse("infinity") == .distantFuture)
        #expect(parse("2024-13-10") == nil)
        #expect(parse("2024-06-10 06:13") == nil)
        #expect(parse("garbage") == nil)
        #expect(Timestamp.format(Date(timeIntervalSince1970: -70_000_000_000)) == nil)
    }

    @Test func batchPlanSendsOneArrayPerColumn() throws {
        let rows = Array(repeating: [PostgresValue](repeating: .null, count: 7), count: 30_000)
        let plan = try BatchInsertPlan(table: "s.t", columns: (0..<7).map { "c\($0)" }, rows: rows, onConflict: "DO NOTHING")
        #expect(plan.chunks.map(\.count) == [10_000, 10_000, 10_000])
        #expect(
            plan.statement(types: ["integer", "text", "bytea", "timestamp with time zone", "jsonb", "bigint", "character varying(8)"])
                == #"INSERT INTO "s"."t" ("c0", "c1", "c2", "c3", "c4", "c5", "c6") SELECT * FROM unnest($1::integer[], $2::text[], $3::bytea[], $4::timestamp with time zone[], $5::jsonb[], $6::bigint[], $7::character varying(8)[]) ON CONFLICT DO NOTHING"#)

        let values: [[PostgresValue]] = [
            [.int(-5), .text(#"a "quoted" \ {x,y} NULL"#), .bytes([0, 0xab]), .timestamp(Date(timeIntervalSince1970: 0)), .bool(true), .null, .double(1.5)],
            [.null, .text(""), .bytes([]), .null, .bool(false), .int(7), .null],
        ]
        let two = try BatchInsertPlan(table: "t", columns: (0..<7).map { "c\($0)" }, rows: values, onConflict: nil)
        #expect(two.statement(types: Array(repeating: "text", count: 7)).hasSuffix("$7::text[])"))
        #expect(
            try two.arrays(values[...]).map { String(decoding: $0.bytes!.dropLast(), as: UTF8.self) } == [
                #"{-5,NULL}"#, #"{"a \"quoted\" \\ {x,y} NULL",""}"#, #"{"\\x00ab","\\x"}"#,
                #"{"1970-01-01 00:00:00.000000+00",NULL}"#, #"{"t","f"}"#, #"{NULL,7}"#, #"{"1.5",NULL}"#,
            ])
        #expect(try two.arrays(values[...]).allSatisfy { $0.bytes?.last == 0 && !$0.isBinary })
        let numbers: [[PostgresValue]] = [[.int(0)], [.int(Int64.min)], [.int(Int64.max)], [.int(10)], [.int(-9)]]
        let one = try BatchInsertPlan(table: "t", columns: ["n"], rows: numbers, onConflict: nil)
        #expect(
            try one.arrays(numbers[...]).map { String(decoding: $0.bytes!.dropLast(), as: UTF8.self) }
                == ["{0,-9223372036854775808,9223372036854775807,10,-9}"])
        let dates: [[PostgresValue]] = [[.timestamp(Date(timeIntervalSince1970: 1_700_000_000.123456))], [.timestamp(Date(timeIntervalSince1970: -86_400.5))]]
        let when = try BatchInsertPlan(table: "t", columns: ["d"], rows: dates, onConflict: nil)
        #expect(
            try when.arrays(dates[...]).map { String(decoding: $0.bytes!.dropLast(), as: UTF8.self) }
                == [#"{"2023-11-14 22:13:20.123456+00","1969-12-30 23:59:59.500000+00"}"#])
        #expect(throws: StoreError.self) { try when.arrays([[.timestamp(Date(timeIntervalSince1970: -1e12))]]) }
        #expect(throws: StoreError.self) { try two.arrays([[.text("nul \u{0}"), .null, .null, .null, .null, .null, .null]]) }
    }

    @Test func identifiers() {
        #expect(SQLIdentifier.isValid("agent_events"))
        #expect(SQLIdentifier.isValid("_x1"))
        for bad in ["", "1abc", "a-b", "a b", "a\"b", "ä", String(repeating: "a", count: 64), "a;b"] {
            #expect(!SQLIdentifier.isValid(bad))
        }
    }

    @Test func errorDescriptionShape() {
        let error = StoreError(.uniqueViolation, operation: "PQexecParams", sqlState: "23505", constraint: "t_pkey",
            serverMessage: "duplicate key value violates unique constraint \"t_pkey\"")
        #expect(error.description == #"StoreError.uniqueViolation in PQexecParams (SQLSTATE 23505) constraint "t_pkey""#)
        #expect(error.debugDescription.contains("duplicate key"))
        #expect(Migration(version: 1, name: "a", sql: "x").checksum != Migration(version: 1, name: "a", sql: "y").checksum)
        #expect(Migration(version: 1, name: "a", sql: "x").checksum.count == 16)
    }
}
