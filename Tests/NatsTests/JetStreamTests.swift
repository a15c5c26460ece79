import Foundation
import MeshTesting
import Nats
import Synchronization
import Testing

@Suite("JetStream", .enabled(if: TestEnvironment.natsAvailable), .serialized)
struct JetStreamTests {
    /// Retries a publish that found the in-flight window full for longer than the stall wait.
    static func retryingWhileWindowFull(_ body: () throws(NatsError) -> Void) throws(NatsError) {
        while true {
            do {
                try body()
                return
            } catch {
                if error.code != .timeout { throw error }
            }
        }
    }

    @Test func streamCreateUpdateInfoDelete() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        var config = StreamConfig(name: "ORDERS", subjects: ["orders.>"])
        config.storage = .memory
        let created = try js.addOrUpdateStream(config)
        #expect(created.name == "ORDERS")
        #expect(created.subjects == ["orders.>"])
        #expect(created.state.messages == 0)

        config.subjects = ["orders.>", "refunds.>"]
        config.maxMsgs = 1_000
        let updated = try js.addOrUpdateStream(config)
        #expect(updated.subjects == ["orders.>", "refunds.>"])

        _ = try await js.publish("refunds.1", payload: [1])
        _ = try await js.publish("orders.1", payload: [2, 3])
        let info = try js.streamInfo("ORDERS")
        #expect(info.state.messages == 2)
        #expect(info.state.firstSeq == 1)
        #expect(info.state.lastSeq == 2)
        #expect(info.state.consumerCount == 0)

        try js.deleteStream("ORDERS")
        #expect(throws: NatsError(code: .notFound, operation: "")) { _ = try js.streamInfo("ORDERS") }
        #expect(throws: NatsError(code: .notFound, operation: "")) { try js.deleteStream("ORDERS") }
        #expect(throws: NatsError(code: .invalidArgument, operation: "")) { _ = try js.streamInfo("bad.name") }
    }

    /// A consumer's state storage: memory on a file stream when asked, reported by its info.
    @Test func consumerMemoryStorageIsKept() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: "WORK", subjects: ["work.>"]))
        var config = ConsumerConfig(durableName: "in-memory", filterSubject: "work.a")
        config.memoryStorage = true
        #expect(try js.addOrUpdateConsumer(stream: "WORK", config: config).memoryStorage)
        #expect(try js.consumerInfo(stream: "WORK", name: "in-memory").memoryStorage)
        #expect(try js.addOrUpdateConsumer(stream: "WORK", config: config).memoryStorage)
        let onFile = ConsumerConfig(durableName: "on-file", filterSubject: "work.b")
        #expect(try js.addOrUpdateConsumer(stream: "WORK", config: onFile).memoryStorage == false)
    }

    @Test func publishWithMsgIdIsDeduplicated() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: "DEDUPE", subjects: ["dedupe.>"]))
        var headers = NatsHeaders()
        headers["X-Kind"] = "test"
        let first = try await js.publish("dedupe.a", payload: Support.bytes("one"), headers: headers, msgId: "id-1")
        let again = try await js.publish("dedupe.a", payload: Support.bytes("one"), msgId: "id-1")
        let other = try await js.publish("dedupe.a", payload: Support.bytes("two"), msgId: "id-2")
        #expect(first.stream == "DEDUPE")
        #expect(first.sequence == 1)
        #expect(!first.duplicate)
        #expect(again.duplicate)
        #expect(again.sequence == 1)
        #expect(other.sequence == 2)
        #expect(try js.streamInfo("DEDUPE").state.messages == 2)

        // Optimistic concurrency on the stream's last sequence.
        await #expect(throws: NatsError(code: .wrongLastRevision, operation: "")) {
            _ = try await js.publish("dedupe.b", payload: [], expectedLastSequence: 1)
        }
        let next = try await js.publish("dedupe.b", payload: [], expectedLastSequence: 2)
        #expect(next.sequence == 3)

        // No stream stores this subject.
        await #expect(throws: NatsError(code: .noResponders, operation: "")) {
            _ = try await js.publish("nostream.x", payload: [], timeout: .seconds(2))
        }
    }

    @Test func publishAsyncDeliversEveryCompletion() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream(publishAsyncMaxPending: 256)
        try js.addOrUpdateStream(StreamConfig(name: "ASYNC", subjects: ["async.>"]))
        let acks = Collector<PubAck>()
        let failures = Collector<NatsError>()
        let total = 3_000
        for index in 0..<total {
            try Self.retryingWhileWindowFull { () throws(NatsError) in
                try js.publishAsync("async.\(index % 10)", payload: Support.bytes("\(index)")) { result in
                    switch result {
                    case .success(let ack): acks.append(ack)
                    case .failure(let error): failures.append(error)
                    }
                }
            }
        }
        try js.publishAsyncComplete(timeout: .seconds(20))
        let all = await TestEnvironment.waitUntil(timeout: .seconds(10)) { acks.count + failures.count == total }
        #expect(all)
        #expect(failures.count == 0)
        #expect(Set(acks.all.map(\.sequence)) == Set(1...UInt64(total)))
        #expect(try js.streamInfo("ASYNC").state.messages == UInt64(total))
        // Without a completion: fire and forget.
        try js.publishAsync("async.x", payload: [1])
        try js.publishAsyncComplete(timeout: .seconds(5))
        #expect(try js.streamInfo("ASYNC").state.messages == UInt64(total + 1))
        #expect(js.publishAsyncFailures == 0)
    }

    @Test func storedMessagesReadsABatchInOrderSkippingDeletedOnes() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        var config = StreamConfig(name: "DIRECT", subjects: ["direct.>"])
        config.retention = .workQueue
        config.allowDirect = true
        try js.addOrUpdateStream(config)
        for index in 1...10 { _ = try await js.publish("direct.\(index)", payload: Support.bytes("m-\(index)")) }
        try js.deleteMessage(stream: "DIRECT", sequence: 3)
        try js.deleteMessage(stream: "DIRECT", sequence: 4)

        let first = try await js.storedMessages(stream: "DIRECT", from: 1, batch: 4)
        #expect(first.map(\.sequence) == [1, 2, 5, 6])
        #expect(first.map(\.subject) == ["direct.1", "direct.2", "direct.5", "direct.6"])
        #expect(first.map { Support.string($0.payload) } == ["m-1", "m-2", "m-5", "m-6"])
        #expect(try await js.storedMessages(stream: "DIRECT", from: 9, batch: 100).map(\.sequence) == [9, 10])
        #expect(try await js.storedMessages(stream: "DIRECT", from: 11, batch: 100).isEmpty)
        // A byte budget ends the batch early (each message here is a few bytes plus headers).
        let small = try await js.storedMessages(stream: "DIRECT", from: 1, batch: 100, maxBytes: 1)
        #expect(small.map(\.sequence) == [1])
        await #expect(throws: NatsError(code: .invalidArgument, operation: "")) { _ = try await js.storedMessages(stream: "DIRECT", from: 1, batch: 0) }

        // Without allow_direct (or without the stream) nothing answers.
        try js.addOrUpdateStream(StreamConfig(name: "NODIRECT", subjects: ["nodirect.>"]))
        _ = try await js.publish("nodirect.1", payload: [1])
        await #expect(throws: NatsError(code: .noResponders, operation: "")) {
            _ = try await js.storedMessages(stream: "NODIRECT", from: 1, batch: 10, timeout: .seconds(2))
        }
    }

    @Test func pullConsumeAndAck() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        var stream = StreamConfig(name: "TASKS", subjects: ["task.>"])
        stream.retention = .workQueue
        try js.addOrUpdateStream(stream)
        for index in 0..<20 { _ = try await js.publish("task.\(index % 2)", payload: Support.bytes("task-\(index)")) }

        let consumer = try js.addOrUpdateConsumer(stream: "TASKS", config: ConsumerConfig(durableName: "workers", filterSubject: "task.>"))
        #expect(consumer.name == "workers")
        #expect(consumer.numPending == 20)
        let pull = try js.pullSubscribe(stream: "TASKS", consumer: "workers")
        let first = try await Support.fetch(pull, count: 5)
        #expect(first.map { Support.string($0.payload) } == (0..<5).map { "task-\($0)" })
        #expect(first.first?.metadata?.streamSequence == 1)
        #expect(first.first?.metadata?.numDelivered == 1)
        #expect(first.first?.metadata?.consumer == "workers")
        for message in first { try message.ack() }

        var rest: [String] = []
        let stream15 = pull.messages(batch: 4)
        for try await message in stream15 {
            rest.append(Support.string(message.payload))
            try message.ack()
            if rest.count == 15 { break }
        }
        #expect(rest == (5..<20).map { "task-\($0)" })
        let empty = try await pull.fetch(batch: 10, expires: .milliseconds(300))
        #expect(empty.isEmpty)
        try nats.flush(timeout: .seconds(2))
        let drained = await TestEnvironment.waitUntil(timeout: .seconds(5)) {
            (try? js.streamInfo("TASKS").state.messages) == 0
        }
        #expect(drained, "work-queue stream should be empty after acks")
        let info = try js.consumerInfo(stream: "TASKS", name: "workers")
        #expect(info.numAckPending == 0)
        #expect(info.numPending == 0)
        try pull.unsubscribe()
        try js.deleteConsumer(stream: "TASKS", name: "workers")
        #expect(throws: NatsError(code: .notFound, operation: "")) { _ = try js.consumerInfo(stream: "TASKS", name: "workers") }
    }

    /// Fetches of mixed sizes while messages keep arriving: a fetch returns at most its
    /// batch, as soon as something arrived, and what an earlier request delivers later is
    /// served by the next fetch — every message once, in order. (libnats 3.4's own fetch
    /// overflowed its array in exactly this situation, nats.c#749.)
    @Test func fetchesOfMixedSizesSeeEveryMessageOnceInOrder() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        var stream = StreamConfig(name: "MIXED", subjects: ["mixed.>"])
        stream.retention = .workQueue
        try js.addOrUpdateStream(stream)
        var config = ConsumerConfig(durableName: "mixed", filterSubject: "mixed.>")
        config.maxAckPending = 10_000
        let pull = try js.pullSubscribe(try js.addOrUpdateConsumer(stream: "MIXED", config: config))
        #expect(pull.stream == "MIXED" && pull.durable == "mixed")
        let total = 3_000
        let publisher = Task {
            for index in 0..<total {
                try js.publishAsync("mixed.x", payload: Support.bytes("\(index)"))
                if index % 250 == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            try js.publishAsyncComplete(timeout: .seconds(10))
        }
        var seen: [Int] = []
        var sizes = [1, 7, 500, 3, 64, 1_000, 2]
        let clock = ContinuousClock()
        let start = clock.now
        while seen.count < total, clock.now - start < .seconds(30) {
            let batch = sizes.removeFirst()
            sizes.append(batch)
            let messages = try await pull.fetch(batch: batch, expires: .milliseconds(200))
            #expect(messages.count <= batch)
            for message in messages {
                seen.append(Int(Support.string(message.payload)) ?? -1)
                try message.ack()
            }
        }
        try await publisher.value
        #expect(seen == Array(0..<total))
        let none = try await pull.fetch(batch: 50, expires: .milliseconds(300))
        #expect(none.isEmpty)
    }

    @Test func nakRedeliversTermStopsInProgressExtends() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        try js.addOrUpdateStream(StreamConfig(name: "RETRY", subjects: ["retry.>"]))
        _ = try await js.publish("retry.a", payload: Support.bytes("nak-me"))
        _ = try await js.publish("retry.b", payload: Support.bytes("term-me"))
        _ = try await js.publish("retry.c", payload: Support.bytes("slow-work"))
        var config = ConsumerConfig(durableName: "retrier")
        config.ackWait = .seconds(2)
        try js.addOrUpdateConsumer(stream: "RETRY", config: config)
        let pull = try js.pullSubscribe(stream: "RETRY", consumer: "retrier")

        let batch = try await Support.fetch(pull, count: 3)
        let delivered = ContinuousClock.now
        #expect(batch.map { Support.string($0.payload) } == ["nak-me", "term-me", "slow-work"])
        // Keep the slow one alive past its 2 s ack wait with in-progress signals, from the start.
        let slow = batch[2]
        let keepAlive = Task {
            while !Task.isCancelled {
                try? slow.inProgress()
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        try batch[0].nak()
        try batch[1].term()
        let redelivered = try await pull.fetch(batch: 1, expires: .seconds(5))
        #expect(redelivered.count == 1)
        #expect(Support.string(redelivered.first?.payload ?? []) == "nak-me")
        #expect(redelivered.first?.metadata?.numDelivered == 2)
        try redelivered.first?.ack()
        // Past the ack wait: not redelivered thanks to inProgress; the terminated one never.
        try await Task.sleep(until: delivered + .milliseconds(2_600))
        let none = try await pull.fetch(batch: 5, expires: .milliseconds(300))
        keepAlive.cancel()
        #expect(none.isEmpty)
        try await slow.ackSync()

        // A delayed nak comes back after the delay.
        _ = try await js.publish("retry.d", payload: Support.bytes("later"))
        let later = try await pull.fetch(batch: 1, expires: .seconds(2))
        try later.first?.nak(delay: .milliseconds(300))
        let again = try await pull.fetch(batch: 1, expires: .seconds(3))
        #expect(again.first.map { Support.string($0.payload) } == "later")
        #expect(again.first?.metadata?.numDelivered == 2)
        let last = try #require(again.first)
        try await last.ackSync()
        let info = try pull.info()
        #expect(info.numAckPending == 0)
    }
}

@Suite("Key-value", .enabled(if: TestEnvironment.natsAvailable), .serialized)
struct KeyValueTests {
    @Test func putGetCreateUpdateDeleteKeys() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        var config = KeyValueConfig(bucket: "agents")
        config.history = 5
        let kv = try js.createKeyValue(config)
        #expect(kv.bucket == "agents")
        #expect(try kv.keys() == [])
        #expect(try kv.get("missing") == nil)

        let r1 = try kv.put("echo-1", Support.bytes("v1"))
        let entry = try #require(try kv.get("echo-1"))
        #expect(entry.value == Support.bytes("v1"))
        #expect(entry.revision == r1)
        #expect(entry.operation == .put)
        #expect(entry.key == "echo-1")
        #expect(entry.created != nil)

        #expect(throws: NatsError(code: .keyExists, operation: "")) { try kv.create("echo-1", Support.bytes("other")) }
        let created = try kv.create("counter-1", Support.bytes("0"))
        #expect(created > r1)

        let r2 = try kv.update("echo-1", Support.bytes("v2"), expectedRevision: r1)
        #expect(r2 > r1)
        #expect(throws: NatsError(code: .wrongLastRevision, operation: "")) {
            try kv.update("echo-1", Support.bytes("stale"), expectedRevision: r1)
        }
        #expect(try kv.get("echo-1")?.value == Support.bytes("v2"))
        #expect(try kv.history("echo-1").map(\.revision) == [r1, r2])

        #expect(Set(try kv.keys()) == ["echo-1", "counter-1"])
        try kv.delete("echo-1")
        #expect(try kv.get("echo-1") == nil)
        #expect(try kv.keys() == ["counter-1"])
        // Create succeeds again on a deleted key.
        _ = try kv.create("echo-1", Support.bytes("v3"))
        #expect(try kv.get("echo-1")?.value == Support.bytes("v3"))
        try kv.purge("counter-1")
        #expect(try kv.get("counter-1") == nil)

        // A delete without waiting: acknowledged as a delete marker, then a put wins again.
        _ = try kv.put("async-1", Support.bytes("a1"))
        let acked = try await withCheckedThrowingContinuation { (done: CheckedContinuation<PubAck, any Error>) in
            do { try kv.deleteAsync("async-1") { done.resume(with: $0.mapError { $0 as any Error }) } } catch { done.resume(throwing: error) }
        }
        #expect(acked.stream == "KV_agents")
        #expect(try kv.get("async-1") == nil && kv.history("async-1").last?.operation == .delete)
        try kv.deleteAsync("async-1")
        _ = try kv.put("async-1", Support.bytes("a2"))
        #expect(try kv.get("async-1")?.value == Support.bytes("a2"))
        // Create and compare-and-set delete without waiting, on another context.
        let other = try nats.jetStream()
        func outcome(_ write: (@escaping @Sendable (Result<PubAck, NatsError>) -> Void) throws(NatsError) -> Void) async throws -> Result<PubAck, NatsError> {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Result<PubAck, NatsError>, any Error>) in
                do throws(NatsError) { try write { done.resume(returning: $0) } } catch { done.resume(throwing: error) }
            }
        }
        let made = try await outcome { (reply) throws(NatsError) in try kv.createAsync("async-2", Support.bytes("b1"), via: other, completion: reply) }.get()
        #expect(try kv.get("async-2")?.revision == made.sequence)
        let twice = try await outcome { (reply) throws(NatsError) in try kv.createAsync("async-2", Support.bytes("b2"), completion: reply) }
        #expect(throws: NatsError(code: .wrongLastRevision, operation: "")) { try twice.get() }
        let stale = try await outcome { (reply) throws(NatsError) in try kv.deleteAsync("async-2", expectedRevision: made.sequence - 1, completion: reply) }
        #expect(throws: NatsError(code: .wrongLastRevision, operation: "")) { try stale.get() }
        _ = try await outcome { (reply) throws(NatsError) in try kv.deleteAsync("async-2", expectedRevision: made.sequence, via: other, completion: reply) }.get()
        #expect(try kv.get("async-2") == nil)
        for bad in ["", ".a", "a.", "a b", "a*", "a>"] {
            #expect(throws: NatsError.self) { try kv.deleteAsync(bad) }
        }

        // Binding: existing bucket works, missing one is notFound.
        let bound = try js.keyValue("agents")
        #expect(try bound.get("echo-1")?.value == Support.bytes("v3"))
        #expect(throws: NatsError(code: .notFound, operation: "")) { _ = try js.keyValue("nope") }
        // createKeyValue on an existing bucket binds to it.
        let again = try js.createKeyValue(KeyValueConfig(bucket: "agents"))
        #expect(try again.get("echo-1")?.value == Support.bytes("v3"))
        try js.deleteKeyValue("agents")
        #expect(throws: NatsError(code: .notFound, operation: "")) { _ = try js.keyValue("agents") }
    }

    @Test func valuesReadManyKeysTogetherSkippingMissingAndDeletedOnes() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        var config = KeyValueConfig(bucket: "state")
        config.history = 3
        let kv = try js.createKeyValue(config)
        #expect(try await kv.values(["a", "b"]).isEmpty)  // an empty bucket
        #expect(try await kv.values([]).isEmpty)

        // More keys than one request may name, each written without waiting.
        let keys = (0..<600).map { "agent-\($0)" }
        for (index, key) in keys.enumerated() {
            try JetStreamTests.retryingWhileWindowFull { () throws(NatsError) in try kv.putAsync(key, Support.bytes("v\(index)")) }
        }
        try js.publishAsyncComplete(timeout: .seconds(10))
        let latest = try kv.put("agent-7", Support.bytes("newest"))  // the last revision wins
        try kv.delete("agent-8")
        try kv.purge("agent-9")
        let found = try await kv.values(keys + ["never-written"])
        #expect(found.count == 598)
        #expect(found["agent-0"]?.value == Support.bytes("v0") && found["agent-599"]?.value == Support.bytes("v599"))
        let newest = try #require(found["agent-7"])
        #expect(newest.value == Support.bytes("newest") && newest.revision == latest && newest.operation == .put)
        #expect(newest.key == "agent-7" && newest.bucket == "state")
        #expect(found["agent-8"] == nil && found["agent-9"] == nil && found["never-written"] == nil)
        for key in ["agent-0", "agent-599"] { #expect(found[key]?.revision == (try kv.get(key))?.revision) }

        let acked = try await withCheckedThrowingContinuation { (done: CheckedContinuation<PubAck, any Error>) in
            do { try kv.putAsync("agent-1", Support.bytes("again")) { done.resume(with: $0.mapError { $0 as any Error }) } } catch { done.resume(throwing: error) }
        }
        #expect(try kv.get("agent-1")?.revision == acked.sequence)

        for bad in ["", "a b", "a*", "a\"b"] {
            await #expect(throws: NatsError.self, "\(bad)") { _ = try await kv.values(["agent-1", bad]) }
        }
        await #expect(throws: NatsError(code: .invalidArgument, operation: "")) {
            _ = try await js.lastMessages(stream: "KV_state", subjects: (0...JetStream.maxLastMessagesSubjects).map { "$KV.state.k\($0)" })
        }
        await #expect(throws: NatsError.self) { _ = try await js.lastMessages(stream: "KV_state", subjects: ["$KV.state.*"]) }
        // A stream without direct get answers nothing: no responders.
        try js.addOrUpdateStream(StreamConfig(name: "PLAIN", subjects: ["plain.>"]))
        await #expect(throws: NatsError(code: .noResponders, operation: "")) {
            _ = try await js.lastMessages(stream: "PLAIN", subjects: ["plain.a"], timeout: .seconds(2))
        }
    }

    @Test func watchDeliversInitialValuesMarkerThenUpdates() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await Support.connect(server)
        let js = try nats.jetStream()
        let kv = try js.createKeyValue(KeyValueConfig(bucket: "watched"))
        try kv.put("a.one", Support.bytes("1"))
        try kv.put("a.two", Support.bytes("2"))
        try kv.put("b.other", Support.bytes("x"))

        let watcher = try kv.watch("a.>")
        var iterator = watcher.makeAsyncIterator()
        var initial: [String] = []
        while let event = await iterator.next() {
            if case .entry(let entry) = event { initial.append("\(entry.key)=\(Support.string(entry.value))") }
            if event == .initialValuesDone { break }
        }
        #expect(initial == ["a.one=1", "a.two=2"])

        try kv.put("b.other", Support.bytes("ignored"))
        try kv.put("a.one", Support.bytes("1b"))
        try kv.delete("a.two")
        var updates: [String] = []
        while updates.count < 2, let event = await iterator.next() {
            if case .entry(let entry) = event { updates.append("\(entry.key):\(entry.operation):\(Support.string(entry.value))") }
        }
        #expect(updates == ["a.one:put:1b", "a.two:delete:"])

        let onlyUpdates = try kv.watch(updatesOnly: true)
        var updatesIterator = onlyUpdates.makeAsyncIterator()
        #expect(await updatesIterator.next() == .initialValuesDone)
        try kv.put("c.new", Support.bytes("fresh"))
        let fresh = await updatesIterator.next()
        if case .entry(let entry) = fresh {
            #expect(entry.key == "c.new")
        } else {
            Issue.record("expected an entry, got \(String(describing: fresh))")
        }
        watcher.stop()
        #expect(await iterator.next() == nil)
        onlyUpdates.stop()

        // Metadata only, in revision order: keys, revisions and operations, no values.
        let listing = try kv.watch(metaOnly: true)
        var listed: [String] = []
        for await event in listing {
            guard case .entry(let entry) = event else { break }
            listed.append("\(entry.key)@\(entry.revision):\(entry.operation):\(entry.value.count)")
        }
        let revisions = try ["a.one", "b.other", "c.new"].map { try #require(try kv.get($0)).revision }
        #expect(listed == ["b.other@\(revisions[1]):put:0", "a.one@\(revisions[0]):put:0", "a.two@\(revisions[0] + 1):delete:0", "c.new@\(revisions[2]):put:0"])
        listing.stop()
    }
}

@Suite("Raw benchmark smoke", .enabled(if: TestEnvironment.natsAvailable), .serialized)
struct RawBenchmarkTests {
    @Test func rawRequestReplyAndPubSubComplete() async throws {
        let server = try await NatsServer.start(jetstream: false)
        defer { server.stop() }
        let rr = try RawNatsBenchmark.requestReply(url: server.url, payloadSize: 64, count: 500, inFlight: 20)
        #expect(rr.count == 500)
        #expect(rr.latenciesNanos.count == 500)
        #expect(rr.latenciesNanos.allSatisfy { $0 > 0 })
        let ps = try RawNatsBenchmark.publishSubscribe(url: server.url, payloadSize: 128, count: 5_000)
        #expect(ps.count == 5_000)
        #expect(ps.latenciesNanos.count == 5_000)
    }
}
