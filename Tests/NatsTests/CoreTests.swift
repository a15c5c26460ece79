import Foundation
import Logging
import MeshTesting
import Nats
import Synchronization
import Testing

/// Shared helpers for the integration tests.
enum Support {
    /// Fetches until `count` messages arrived or a fetch found none: a fetch returns once
    /// messages arrived (up to its batch), so a burst may come in parts.
    static func fetch(_ pull: PullConsumer, count: Int, expires: Duration = .seconds(5)) async throws -> [JetStreamMessage] {
        var messages: [JetStreamMessage] = []
        while messages.count < count {
            let more = try await pull.fetch(batch: count - messages.count, expires: expires)
            if more.isEmpty { break }
            messages += more
        }
        return messages
    }

    static let logger: Logger = {
        var logger = Logger(label: "mesh.nats.tests")
        logger.logLevel = .warning
        return logger
    }()

    static func connect(_ server: NatsServer, name: String = "test", configure: (inout NatsOptions) -> Void = { _ in }) async throws -> NatsConnection {
        var options = NatsOptions()
        options.servers = [server.url]
        options.name = name
        configure(&options)
        return try await NatsConnection.connect(options, logger: logger)
    }

    /// Collects events until one matches `predicate`; nil when `timeout` passes first.
    static func events(
        _ events: AsyncStream<NatsConnectionEvent>, until predicate: @escaping @Sendable (NatsConnectionEvent) -> Bool,
        timeout: Duration = .seconds(15)
    ) async -> [String]? {
        await withTaskGroup(of: [String]?.self) { group in
            group.addTask {
                var seen: [String] = []
                for await event in events {
                    seen.append("\(event)")
                    if predicate(event) { return seen }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    static func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }
    static func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}

/// Collects values from callback threads for assertions.
final class Collector<T: Sendable>: Sendable {
    private let items = Mutex<[T]>([])
    func append(_ item: T) { items.withLock { $0.append(item) } }
    var all: [T] { items.withLock { $0 } }
    var count: Int { items.withLock { $0.count } }
}

@Suite("Core NATS", .enabled(if: TestEnvironment.natsAvailable), .serialized)
struct CoreTests {
    @Test func publishSubscribeWithHeadersRoundTrip() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let sub = try nats.subscribe("orders.*")
        try nats.flush(timeout: .seconds(2))

        var headers = NatsHeaders()
        headers["traceparent"] = "00-abc-def-01"
        headers.append(name: "X-Tag", value: "one")
        headers.append(name: "X-Tag", value: "two")
        for index in 0..<10 {
            try nats.publish("orders.\(index)", payload: Support.bytes("order-\(index)"), headers: index == 0 ? headers : nil)
        }
        try nats.flush(timeout: .seconds(2))

        var received: [NatsMessage] = []
        for await message in sub {
            received.append(message)
            if received.count == 10 { break }
        }
        #expect(received.map(\.subject) == (0..<10).map { "orders.\($0)" })
        #expect(received.map { Support.string($0.payload) } == (0..<10).map { "order-\($0)" })
        #expect(received[0].headers["traceparent"] == "00-abc-def-01")
        #expect(received[0].headers.values("X-Tag") == ["one", "two"])
        #expect(received[1].headers.isEmpty)
        #expect(sub.droppedCount == 0)
        try sub.unsubscribe()
        var ended = sub.makeAsyncIterator()
        let afterEnd = await ended.next()
        #expect(afterEnd == nil)
    }

    @Test func invalidSubjectsAreRejectedBeforeC() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let nats = try await Support.connect(server)
        for bad in ["", "a..b", ".a", "a.", "a b", "a\tb", "a.*", "a.>"] {
            #expect(throws: NatsError(code: .invalidSubject, operation: "")) {
                try nats.publish(bad, payload: [])
            }
        }
        #expect(throws: NatsError(code: .invalidSubject, operation: "")) { _ = try nats.subscribe("a.>.b") }
        _ = try nats.subscribe("a.*.c.>")
    }

    @Test func handlerSubscriptionRunsOnDeliveryThread() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let seen = Collector<String>()
        let sub = try nats.subscribe("fast.path") { message in seen.append(Support.string(message.payload)) }
        try nats.flush(timeout: .seconds(2))
        for index in 0..<500 { try nats.publish("fast.path", payload: Support.bytes("\(index)")) }
        try nats.flush(timeout: .seconds(2))
        let done = await TestEnvironment.waitUntil(timeout: .seconds(5)) { seen.count == 500 }
        #expect(done)
        #expect(seen.all == (0..<500).map { "\($0)" })
        try await sub.drain(timeout: .seconds(5))
        #expect(!sub.isActive)
        try nats.publish("fast.path", payload: Support.bytes("late"))
        try nats.flush(timeout: .seconds(2))
        #expect(seen.count == 500)
    }

    @Test func queueGroupSplitsMessagesWithoutDuplicates() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let first = Collector<Int>()
        let second = Collector<Int>()
        let subA = try nats.subscribe("work.items", queue: "workers") { first.append(Int(Support.string($0.payload))!) }
        let subB = try nats.subscribe("work.items", queue: "workers") { second.append(Int(Support.string($0.payload))!) }
        try nats.flush(timeout: .seconds(2))
        let total = 2_000
        for index in 0..<total { try nats.publish("work.items", payload: Support.bytes("\(index)")) }
        try nats.flush(timeout: .seconds(2))
        let done = await TestEnvironment.waitUntil(timeout: .seconds(5)) { first.count + second.count == total }
        #expect(done)
        #expect(first.count > 0)
        #expect(second.count > 0)
        let union = first.all + second.all
        #expect(Set(union).count == total)
        #expect(union.count == total)
        withExtendedLifetime((subA, subB)) {}
    }

    @Test func requestReplyHappyPath() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let responder = try await Support.connect(server, name: "responder")
        let client = try await Support.connect(server, name: "client")
        let service = try responder.subscribe("svc.upper") { message in
            var headers = NatsHeaders()
            headers["X-Echo"] = message.headers["X-In"] ?? "none"
            try? responder.respond(to: message, payload: Support.bytes(Support.string(message.payload).uppercased()), headers: headers)
        }
        try responder.flush(timeout: .seconds(2))
        var headers = NatsHeaders()
        headers["X-In"] = "hello-header"
        let reply = try await client.request("svc.upper", payload: Support.bytes("hello"), headers: headers, timeout: .seconds(2))
        #expect(Support.string(reply.payload) == "HELLO")
        #expect(reply.headers["X-Echo"] == "hello-header")
        #expect(client.requestsInFlight == 0)
        withExtendedLifetime(service) {}
    }

    @Test func thousandsOfConcurrentRequestsAllAnsweredCorrectly() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let responder = try await Support.connect(server, name: "responder")
        let client = try await Support.connect(server, name: "client")
        let service = try responder.subscribe("svc.double") { message in
            let value = Int(Support.string(message.payload)) ?? -1
            try? responder.respond(to: message, payload: Support.bytes("\(value * 2)"))
        }
        try responder.flush(timeout: .seconds(2))
        let count = 2_000
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for index in 0..<count {
                group.addTask {
                    let reply = try await client.request("svc.double", payload: Support.bytes("\(index)"), timeout: .seconds(20))
                    return (index, Int(Support.string(reply.payload)) ?? -1)
                }
            }
            var all: [Int: Int] = [:]
            for try await (index, value) in group { all[index] = value }
            return all
        }
        #expect(results.count == count)
        #expect(results.allSatisfy { $0.value == $0.key * 2 })
        #expect(client.requestsInFlight == 0)
        withExtendedLifetime(service) {}
    }

    @Test func noRespondersFailsFast() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let client = try await Support.connect(server)
        let started = ContinuousClock.now
        await #expect(throws: NatsError(code: .noResponders, operation: "")) {
            _ = try await client.request("nobody.home", payload: [1, 2, 3], timeout: .seconds(30))
        }
        // Not a performance assertion: only that the 30 s timeout was not what ended it.
        #expect(ContinuousClock.now - started < .seconds(25))
    }

    @Test func requestTimesOut() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let client = try await Support.connect(server)
        let silent = Collector<Int>()
        let sink = try client.subscribe("silent.svc") { _ in silent.append(1) }
        try client.flush(timeout: .seconds(2))
        do {
            _ = try await client.request("silent.svc", payload: [], timeout: .milliseconds(200))
            Issue.record("expected a timeout")
        } catch {
            #expect(error.code == .timeout)
        }
        #expect(silent.count == 1)
        #expect(client.requestsInFlight == 0)
        withExtendedLifetime(sink) {}
    }

    /// The callback form: a reply, no responders, a timeout and an invalid subject each end
    /// the request exactly once, and nothing stays in flight.
    @Test func callbackRequestsCompleteOnceWithEachOutcome() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let responder = try await Support.connect(server, name: "responder")
        let client = try await Support.connect(server, name: "client")
        let service = try responder.subscribe("svc.upper") { message in
            try? responder.respond(to: message, payload: Support.bytes(Support.string(message.payload).uppercased()))
        }
        let silent = try responder.subscribe("silent.svc") { _ in }
        try responder.flush(timeout: .seconds(2))
        let outcomes = Collector<String>()
        func record(_ label: String) -> @Sendable (Result<NatsMessage, NatsError>) -> Void {
            { result in
                switch result {
                case .success(let message): outcomes.append("\(label): \(Support.string(message.payload))")
                case .failure(let error): outcomes.append("\(label): \(error.code)")
                }
            }
        }
        for index in 0..<200 {
            client.request("svc.upper", payload: Support.bytes("m\(index)"), timeout: .seconds(10), completion: record("reply \(index)"))
        }
        client.request("nobody.home", payload: [], timeout: .seconds(30), completion: record("nobody"))
        client.request("silent.svc", payload: [], timeout: .milliseconds(200), completion: record("silent"))
        client.request("bad subject", payload: [], timeout: .seconds(1), completion: record("bad"))
        let done = await TestEnvironment.waitUntil(timeout: .seconds(10)) { outcomes.count >= 203 }
        #expect(done)
        try await Task.sleep(for: .milliseconds(300))  // a second completion would land meanwhile
        let all = outcomes.all
        #expect(all.count == 203, "\(all.count) completions")
        #expect(Set(all) == Set((0..<200).map { "reply \($0): M\($0)" } + ["nobody: noResponders", "silent: timeout", "bad: invalidSubject"]))
        #expect(client.requestsInFlight == 0)
        withExtendedLifetime((service, silent)) {}
    }

    @Test func cancelledRequestEndsWithCancelled() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let client = try await Support.connect(server)
        let sink = try client.subscribe("silent.svc") { _ in }
        try client.flush(timeout: .seconds(2))
        let task = Task { () throws(NatsError) -> NatsMessage in
            try await client.request("silent.svc", payload: [], timeout: .seconds(30))
        }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let result = await task.result
        #expect(throws: NatsError(code: .cancelled, operation: "")) { try result.get() }
        #expect(client.requestsInFlight == 0)
        withExtendedLifetime(sink) {}
    }

    @Test func boundedBufferOverflowCountsDropsAndReportsSlowConsumer() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let events = nats.events
        let sub = try nats.subscribe("flood", bufferSize: 10)
        try nats.flush(timeout: .seconds(2))
        for index in 0..<1_000 { try nats.publish("flood", payload: Support.bytes("\(index)")) }
        try nats.flush(timeout: .seconds(2))
        let dropped = await TestEnvironment.waitUntil(timeout: .seconds(5)) { sub.droppedCount == 990 }
        #expect(dropped, "dropped \(sub.droppedCount)")
        let seen = await Support.events(events) { event in
            if case .error(let error) = event { return error.code == .slowConsumer }
            return false
        }
        #expect(seen != nil, "no slowConsumer event")
        // The first ten messages were kept, in order.
        var kept: [String] = []
        for await message in sub {
            kept.append(Support.string(message.payload))
            if kept.count == 10 { break }
        }
        #expect(kept == (0..<10).map { "\($0)" })
    }

    @Test func cnatsPendingLimitOverflowIsReportedForHandlerSubscriptions() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let events = nats.events
        let handled = Collector<Int>()
        let sub = try nats.subscribe("slow.handler", maxPendingMessages: 5) { _ in
            handled.append(1)
            Thread.sleep(forTimeInterval: 0.005)
        }
        try nats.flush(timeout: .seconds(2))
        for _ in 0..<300 { try nats.publish("slow.handler", payload: [0]) }
        try nats.flush(timeout: .seconds(2))
        let seen = await Support.events(events) { event in
            if case .error(let error) = event { return error.code == .slowConsumer && error.operation == "natsErrHandler" }
            return false
        }
        #expect(seen != nil, "no slowConsumer event from cnats")
        let settled = await TestEnvironment.waitUntil(timeout: .seconds(10)) { handled.count + sub.droppedCount == 300 }
        #expect(settled, "handled \(handled.count) dropped \(sub.droppedCount)")
        #expect(sub.droppedCount > 0)
    }

    @Test func statisticsAndInbox() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let inbox = nats.newInbox()
        #expect(inbox.hasPrefix("_INBOX."))
        #expect(inbox != nats.newInbox())
        let sub = try nats.subscribe(inbox)
        try nats.publish(inbox, payload: [1, 2, 3, 4])
        try nats.flush(timeout: .seconds(2))
        var iterator = sub.makeAsyncIterator()
        let message = await iterator.next()
        #expect(message?.payload == [1, 2, 3, 4])
        let stats = nats.statistics
        #expect(stats.outMsgs >= 1)
        #expect(stats.inMsgs >= 1)
        #expect(stats.outBytes >= 4)
        #expect(nats.isConnected)
        try await nats.drain(timeout: .seconds(5))
        #expect(nats.isClosed)
        #expect(throws: NatsError(code: .connectionClosed, operation: "")) { try nats.publish("x", payload: []) }
    }

    @Test func connectFailsWithNotConnected() async throws {
        var options = NatsOptions()
        options.servers = ["nats://127.0.0.1:\(try TestEnvironment.freePort())"]
        options.connectTimeout = .milliseconds(500)
        await #expect(throws: NatsError(code: .notConnected, operation: "")) {
            _ = try await NatsConnection.connect(options, logger: Support.logger)
        }
    }

    @Test func reconnectsAfterServerRestartAndKeepsSubscriptions() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let subscriber = try await Support.connect(server, name: "subscriber")
        let events = subscriber.events
        let sub = try subscriber.subscribe("after.restart")
        try subscriber.flush(timeout: .seconds(2))

        server.stopKeepingData()
        try await server.restart()

        let seen = await Support.events(events) { event in
            if case .reconnected = event { return true }
            return false
        }
        #expect(seen?.contains("disconnected") == true)
        #expect(seen?.last == "reconnected")
        #expect(subscriber.statistics.reconnects >= 1)

        let publisher = try await Support.connect(server, name: "publisher")
        // The resubscription reaches the server asynchronously after the reconnect.
        try subscriber.flush(timeout: .seconds(2))
        try publisher.publish("after.restart", payload: Support.bytes("hello again"))
        try publisher.flush(timeout: .seconds(2))
        var iterator = sub.makeAsyncIterator()
        let message = await iterator.next()
        #expect(message.map { Support.string($0.payload) } == "hello again")
    }
}
