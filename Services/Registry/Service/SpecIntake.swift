import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Nats
import ServiceLifecycle

/// Applies agent specs published fire-and-forget to `<prefix>.spec.<id>` (stream
/// `MESH_SPECS`, work-queue retention, de-duplicated by `Nats-Msg-Id`) as upserts, through
/// one durable pull consumer `registry` shared by every registry instance (each spec is
/// taken by one of them).
///
/// - A valid spec is written (CAS upsert) and acknowledged.
/// - An invalid one (undecodable, invalid id or kind, id not matching the subject, …) is
///   terminated (`term`: never redelivered), logged as a warning and announced as an
///   `agent.rejected` event with the reason.
/// - A transient failure (JetStream unavailable) is nak'ed with a delay and retried;
///   nothing is lost.
struct SpecIntake: Service {
    let context: ServiceContext
    let server: RegistryServer
    let rules: AgentSpecRules
    /// Messages fetched at a time.
    static let batch = 64
    /// Redelivery delay after a transient failure.
    static let retryDelay: Duration = .seconds(1)

    func run() async throws {
        let subjects = context.subjects
        let js = try context.nats.jetStream()
        var config = ConsumerConfig(durableName: subjects.registrySpecsConsumer, filterSubject: subjects.specsAll)
        config.ackWait = .seconds(30)
        config.maxAckPending = 1_000
        config.description = "Registry: applies published agent specs"
        let consumer = try await StartupRetry.run("spec intake consumer", logger: context.logger) {
            return try js.pullSubscribe(try js.addOrUpdateConsumer(stream: subjects.specsStream, config: config))
        }
        defer { try? consumer.unsubscribe() }
        await server.directory.waitUntilLoaded()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let messages: [JetStreamMessage]
            do {
                messages = try await consumer.fetch(batch: Self.batch, expires: .milliseconds(250))
            } catch {
                if error.code == .connectionClosed { return }
                context.logger.debug("spec fetch failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
                continue
            }
            if messages.isEmpty { continue }
            // KV writes block: run the batch on a thread of its own, off the cooperative pool.
            await BlockingIO.run { for message in messages { self.apply(message) } }
        }
    }

    /// Applies one published spec and settles its message.
    func apply(_ message: JetStreamMessage) {
        let logger = context.logger
        let spec: AgentSpec
        do throws(MeshError) {
            if let type = message.headers[MeshHeader.messageType], type != AgentSpec.messageType.rawValue {
                throw MeshError(.invalidArgument, "Mesh-Type header \(AgentSpecRules.quoted(type)) is not \(AgentSpec.messageType)")
            }
            do throws(WireError) {
                spec = try AgentSpec(serializedBytes: message.payload, limits: WireLimits(maxMessageBytes: RegistryServer.maxRequestBytes))
            } catch {
                throw MeshError(.invalidArgument, "not a valid \(AgentSpec.messageType) (\(error.code))")
            }
            let expectedSubject = (try? AgentID(spec.id)).map { context.subjects.spec(agent: $0) }
            guard expectedSubject == message.subject else {
                throw MeshError(.invalidArgument, "published on \(message.subject), which is not the subject of agent id \(AgentSpecRules.quoted(spec.id))")
            }
            try rules.validate(spec)
        } catch {
            reject(message, error)
            return
        }
        do throws(MeshError) {
            _ = try server.apply(spec, mode: .upsert, expectedRevision: 0, source: "published spec")
            try? message.ack()
        } catch {
            switch error.code {
            case .unavailable, .timeout, .conflict, .internalError:
                logger.warning("published spec not applied yet; will retry", metadata: ["mesh.agent.id": "\(spec.id)", "error": "\(error)"])
                try? message.nak(delay: Self.retryDelay)
            default:
                reject(message, error)
            }
        }
    }

    private func reject(_ message: JetStreamMessage, _ error: MeshError) {
        let token = message.subject.split(separator: ".").last.map(String.init) ?? ""
        let agent = try? AgentID(token)
        context.logger.warning(
            "published spec rejected",
            metadata: [
                "mesh.subject": "\(message.subject)", "mesh.error.code": "\(error.code.rawValue)", "error": "\(error.message)",
                "mesh.stream.sequence": "\(message.metadata?.streamSequence ?? 0)",
            ])
        server.events.publish(.agentRejected, agent: agent, reason: "published spec rejected: \(error.message)", attributes: ["code": error.code.rawValue])
        try? message.term()
    }
}
