import Dispatch
import Foundation
import MeshTesting
@testable import Nats
import Synchronization
import Testing

/// The coalescing link: requests and responses on a second connection whose writes are
/// held back only while the delivering subscription has more messages queued.
@Suite("Request/reply link") struct CoalescingLinkTests {
    /// Blocks the delivery thread in the first callback until `queued` more messages wait
    /// behind it (the subscriber's flush returns after the server sent them all).
    private final class Gate: Sendable {
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let first = Atomic<Bool>(true)

        /// Called from the handler: only the first call blocks.
        func holdFirst() {
            guard first.exchange(false, ordering: .relaxed) else { return }
            entered.signal()
            _ = release.wait(timeout: .now() + .seconds(20))
        }
    }

    @Test func theLinkExistsUnlessTurnedOff() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let linked = try await Support.connect(server)
        let plain = try await Support.connect(server) { $0.coalescingLink = false }
        #expect(CoalescingLink.internalPublish != nil, "libnats 3.x exports natsConn_publish")
        #expect(linked.link != nil)
        #expect(plain.link == nil)
        // Either way request/reply works, in both directions.
        let service = try linked.subscribe("svc.link") { message in try? linked.respond(to: message, payload: message.payload) }
        let plainService = try plain.subscribe("svc.plain") { message in try? plain.respond(to: message, payload: message.payload) }
        try linked.flush(timeout: .seconds(2))
        try plain.flush(timeout: .seconds(2))
        #expect(try await plain.request("svc.link", payload: [1], timeout: .seconds(5)).payload == [1])
        #expect(try await linked.request("svc.plain", payload: [2], timeout: .seconds(5)).payload == [2])
        await #expect(throws: NatsError(code: .noResponders, operation: "")) {
            _ = try await linked.request("nobody.home", payload: [], timeout: .seconds(30))
        }
        withExtendedLifetime((service, plainService)) {}
    }

    @Test func deferringHoldsExactlyWhileMoreMessagesAreQueued() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let subscriber = try await Support.connect(server, name: "subscriber")
        let publisher = try await Support.connect(server, name: "publisher")
        let gate = Gate()
        let hints = Mutex<[Int: Bool]>([:])
        let count = 50
        let sub = try subscriber.subscribe("burst") { message in
            gate.holdFirst()
            let index = Int(Support.string(message.payload)) ?? -1
            hints.withLock { $0[index] = DeliveryHint.deferring }
        }
        try subscriber.flush(timeout: .seconds(2))
        try publisher.publish("burst", payload: Support.bytes("0"))
        #expect(gate.entered.wait(timeout: .now() + .seconds(10)) == .success)
        for index in 1..<count { try publisher.publish("burst", payload: Support.bytes("\(index)")) }
        try publisher.flush(timeout: .seconds(2))
        try subscriber.flush(timeout: .seconds(2))
        gate.release.signal()
        for _ in 0..<200 where hints.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(25)) }
        let seen = hints.withLock { $0 }
        #expect(seen[0] == false, "nothing was queued behind the first message when it arrived")
        #expect((1..<count - 1).allSatisfy { seen[$0] == true })
        #expect(seen[count - 1] == false, "the last of a burst flushes")
        #expect(DeliveryHint.deferring == false)
        withExtendedLifetime(sub) {}
    }

    /// A reply held back because more requests were queued still leaves when nothing
    /// follows it on the link (cnats' flusher sends it).
    @Test func aHeldBackReplyIsSentWhenNothingFollows() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let responder = try await Support.connect(server, name: "responder")
        let client = try await Support.connect(server, name: "client")
        let gate = Gate()
        let deferred = Mutex<Bool?>(nil)
        let sub = try responder.subscribe("held") { message in
            gate.holdFirst()
            guard message.reply != nil else { return }  // the messages behind it get no reply
            deferred.withLock { $0 = DeliveryHint.deferring }
            try? responder.respond(to: message, payload: Support.bytes("answer"))
        }
        try responder.flush(timeout: .seconds(2))
        // Queued behind a message that holds the delivery thread: the request, then 20 more.
        try client.publish("held", payload: [])
        #expect(gate.entered.wait(timeout: .now() + .seconds(10)) == .success)
        async let reply = client.request("held", payload: [], timeout: .seconds(10))
        for _ in 0..<200 where sub.pending < 1 { try await Task.sleep(for: .milliseconds(10)) }
        for _ in 0..<20 { try client.publish("held", payload: []) }
        try client.flush(timeout: .seconds(2))
        try responder.flush(timeout: .seconds(2))
        #expect(sub.pending == 21)
        gate.release.signal()
        #expect(Support.string(try await reply.payload) == "answer")
        #expect(deferred.withLock { $0 } == true, "the reply was written while 20 messages were queued")
        withExtendedLifetime(sub) {}
    }

    /// A batch acknowledgement settles every message once, with the link (one write) and
    /// without it (one publish each); messages settled before are skipped.
    @Test(arguments: [true, false]) func aBatchAckSettlesEveryMessageOnce(linked: Bool) async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server) { $0.coalescingLink = linked }
        #expect((nats.link != nil) == linked)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: "BATCH", subjects: ["batch.>"]))
        for index in 0..<300 { _ = try await js.publish("batch.\(index)", payload: Support.bytes("\(index)")) }
        var config = ConsumerConfig(durableName: "batcher")
        config.ackWait = .seconds(30)
        try js.addOrUpdateConsumer(stream: "BATCH", config: config)
        let pull = try js.pullSubscribe(stream: "BATCH", consumer: "batcher")
        let messages = try await Support.fetch(pull, count: 300)
        #expect(messages.count == 300)
        try messages[0].ack()
        try JetStreamMessage.ack(messages)
        var info = try js.consumerInfo(stream: "BATCH", name: "batcher")
        for _ in 0..<100 where info.numAckPending > 0 {
            try await Task.sleep(for: .milliseconds(20))
            info = try js.consumerInfo(stream: "BATCH", name: "batcher")
        }
        #expect(info.numAckPending == 0)
        #expect(info.numRedelivered == 0)
        #expect(try await pull.fetch(batch: 10, expires: .milliseconds(300)).isEmpty)
    }

    @Test func requestsWorkAgainAfterTheServerRestarts() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let responder = try await Support.connect(server, name: "responder")
        let client = try await Support.connect(server, name: "client")
        let sub = try responder.subscribe("svc.restart") { message in try? responder.respond(to: message, payload: message.payload) }
        try responder.flush(timeout: .seconds(2))
        #expect(try await client.request("svc.restart", payload: [1], timeout: .seconds(5)).payload == [1])

        server.stopKeepingData()
        try await server.restart()
        // Both links of both connections reconnect on their own; the subscription comes back.
        var answered = false
        for _ in 0..<100 where !answered {
            answered = (try? await client.request("svc.restart", payload: [2], timeout: .milliseconds(300)))?.payload == [2]
            if !answered { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(answered)
        // Requests use the coalescing link; the main link reconnects on its own schedule.
        let bothReconnected = await TestEnvironment.waitUntil(timeout: .seconds(10)) { client.statistics.reconnects >= 2 }
        #expect(bothReconnected, "the main link and the coalescing link each reconnected: \(client.statistics.reconnects)")
        client.close()
        await #expect(throws: NatsError(code: .connectionClosed, operation: "")) {
            _ = try await client.request("svc.restart", payload: [3], timeout: .seconds(5))
        }
        withExtendedLifetime(sub) {}
    }
}
