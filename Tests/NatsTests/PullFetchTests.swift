import Foundation
import MeshTesting
@testable import Nats
import Testing

/// A fetch that starts with deliveries already waiting in the consumer's inbox — late
/// answers to an earlier pull request, as when a burst (a batch nak'ed after a Postgres
/// deadlock coming back) meets a fetch's deadline. libnats 3.4.1's
/// `natsSubscription_Fetch` wrote past its `batch`-slot array in this case once more than
/// half a batch was waiting (nats.c#749): the heap corruption that aborted the registry.
@Suite("Pull fetch with late deliveries", .enabled(if: TestEnvironment.natsAvailable), .serialized)
struct PullFetchTests {
    static let stream = "LATE"
    static let consumer = "mirror"
    static let nextSubject = "$JS.API.CONSUMER.MSG.NEXT.\(stream).\(consumer)"

    static func publish(_ js: JetStream, _ range: Range<Int>) throws {
        for index in range { try js.publishAsync("late.\(index)", payload: Support.bytes("m-\(index)")) }
        try js.publishAsyncComplete(timeout: .seconds(10))
    }

    static func waitFor(_ js: JetStream, pending: UInt64? = nil, ackPending: Int? = nil) async {
        let reached = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            guard let info = try? js.consumerInfo(stream: stream, name: consumer) else { return false }
            return (pending.map { info.numPending == $0 } ?? true) && (ackPending.map { info.numAckPending == $0 } ?? true)
        }
        #expect(reached, "consumer did not reach pending \(pending.map(String.init) ?? "-"), ack pending \(ackPending.map(String.init) ?? "-")")
    }

    @Test func aFetchNeverReturnsMoreThanItsBatchAndLosesNothing() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: Self.stream, subjects: ["late.>"]))
        var config = ConsumerConfig(durableName: Self.consumer)
        config.maxAckPending = 10_000
        try js.addOrUpdateConsumer(stream: Self.stream, config: config)
        let pull = try js.pullSubscribe(stream: Self.stream, consumer: Self.consumer)
        let inbox = pull.deliverSubject

        // 400 deliveries waiting in the inbox before any fetch (another request's answers).
        try Self.publish(js, 0..<400)
        try nats.publish(Self.nextSubject, payload: Support.bytes(#"{"batch":400,"no_wait":true}"#), reply: inbox)
        await Self.waitFor(js, pending: 0, ackPending: 400)
        try nats.flush(timeout: .seconds(5))
        // A request still open that answers while the fetches below run.
        try nats.publish(Self.nextSubject, payload: Support.bytes(#"{"batch":100,"expires":5000000000}"#), reply: inbox)
        try nats.flush(timeout: .seconds(5))
        try Self.publish(js, 400..<550)

        // A fetch returns what has arrived when it runs — the deliveries reach the inbox one
        // by one, so how many fetches it takes varies; a bound keeps a lost message from
        // looping forever (each empty fetch waits out its 2 s).
        var sequences: [UInt64] = []
        var fetches = 0
        let sizes = [500, 30]
        while sequences.count < 550 && fetches < 40 {
            let batch = fetches < sizes.count ? sizes[fetches] : 500
            let messages = try await pull.fetch(batch: batch, expires: .seconds(2))
            #expect(messages.count <= batch)
            fetches += 1
            sequences += messages.compactMap { $0.metadata?.streamSequence }
            for message in messages { try message.ack() }
        }
        #expect(sequences.count == 550, "\(sequences.count) messages in \(fetches) fetches")
        #expect(Set(sequences) == Set(1...550))
        try nats.flush(timeout: .seconds(2))
        await Self.waitFor(js, pending: 0, ackPending: 0)
    }
}

/// A fetch waits without a thread of its own: what ends the wait early, and what it refuses.
@Suite("Waiting fetches", .enabled(if: TestEnvironment.natsAvailable))
struct WaitingFetchTests {
    @Test func aWaitingFetchEndsWithAMessageAnUnsubscribeOrACancellation() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: "WAIT", subjects: ["wait.>"]))
        try js.addOrUpdateConsumer(stream: "WAIT", config: ConsumerConfig(durableName: "waiter"))
        let pull = try js.pullSubscribe(stream: "WAIT", consumer: "waiter")

        // A message published while the fetch waits ends the wait at once.
        let clock = ContinuousClock()
        var started = clock.now
        let waiting = Task { try await pull.fetch(batch: 10, expires: .seconds(20)) }
        try await Task.sleep(for: .milliseconds(200))
        // One fetch at a time: a second one waiting meanwhile is refused.
        await #expect(throws: NatsError(code: .invalidArgument, operation: "")) { _ = try await pull.fetch(batch: 1, expires: .seconds(1)) }
        _ = try await js.publish("wait.1", payload: Support.bytes("one"))
        let got = try await waiting.value
        #expect(got.map { Support.string($0.payload) } == ["one"])
        #expect(clock.now - started < .seconds(5))
        for message in got { try message.ack() }

        // Cancelling the fetching task ends the wait with nothing.
        started = clock.now
        let cancelled = Task { try await pull.fetch(batch: 10, expires: .seconds(20)) }
        try await Task.sleep(for: .milliseconds(200))
        cancelled.cancel()
        #expect(try await cancelled.value.isEmpty)
        #expect(clock.now - started < .seconds(5))

        // Unsubscribing ends the wait with connectionClosed, and later fetches too.
        started = clock.now
        let closed = Task { try await pull.fetch(batch: 10, expires: .seconds(20)) }
        try await Task.sleep(for: .milliseconds(200))
        try pull.unsubscribe()
        await #expect(throws: NatsError(code: .connectionClosed, operation: "")) { _ = try await closed.value }
        #expect(clock.now - started < .seconds(5))
        await #expect(throws: NatsError(code: .connectionClosed, operation: "")) { _ = try await pull.fetch(batch: 1, expires: .seconds(1)) }
    }

    @Test func aFetchOnADeletedConsumerFailsWithNotFound() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: "DEL", subjects: ["del.>"]))
        try js.addOrUpdateConsumer(stream: "DEL", config: ConsumerConfig(durableName: "gone"))
        let pull = try js.pullSubscribe(stream: "DEL", consumer: "gone")
        let waiting = Task { try await pull.fetch(batch: 10, expires: .seconds(20)) }
        try await Task.sleep(for: .milliseconds(200))
        try js.deleteConsumer(stream: "DEL", name: "gone")
        await #expect(throws: NatsError(code: .notFound, operation: "")) { _ = try await waiting.value }
    }
}

/// What a shard's old owner leaves behind: a pull request still open on the server after
/// its fetcher unsubscribed. The server must not hand a new message to that request (an
/// inbox nobody reads, so the message would wait out the ack wait before the new owner
/// got it); this is what lets the worker keep its pull requests open for long.
@Suite("Abandoned pull requests", .enabled(if: TestEnvironment.natsAvailable))
struct AbandonedPullTests {
    @Test func aPullRequestWhoseInboxWentAwayTakesNothing() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: "GONE", subjects: ["gone.>"]))
        var config = ConsumerConfig(durableName: "owner")
        config.ackWait = .seconds(30)
        try js.addOrUpdateConsumer(stream: "GONE", config: config)
        let old = try js.pullSubscribe(stream: "GONE", consumer: "owner")
        try nats.publish(
            "$JS.API.CONSUMER.MSG.NEXT.GONE.owner", payload: Support.bytes(#"{"batch":10,"expires":20000000000}"#), reply: old.deliverSubject)
        try nats.flush(timeout: .seconds(5))
        try old.unsubscribe()
        try nats.flush(timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(100))
        _ = try await js.publish("gone.1", payload: Support.bytes("after"))
        let new = try js.pullSubscribe(stream: "GONE", consumer: "owner")
        let started = ContinuousClock.now
        let messages = try await new.fetch(batch: 1, expires: .seconds(5))
        #expect(messages.count == 1, "the message went to the abandoned request")
        #expect(ContinuousClock.now - started < .seconds(2))
    }
}

@Suite struct MessageLifetimeTests {
    /// The linked libnats has the message layout `meshnats_msg_destroy` relies on, so
    /// messages are freed on the thread that is done with them (every other test then runs
    /// that path). A libnats with another layout falls back to `natsMsg_Destroy`.
    @Test func messagesAreFreedOnTheCallingThread() {
        #expect(NatsLibrary.freesOnCallingThread)
    }
}
