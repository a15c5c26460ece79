public import Foundation
public import Logging
public import MeshCore
import MeshProto
import Metrics
public import Nats

/// Publishes mesh events to stream `MESH_EVENTS` (`<prefix>.evt.<domain>.<name>`), each
/// with a time-ordered id (in the event; the timeline stores an id once). Publishing is
/// asynchronous and never blocks the caller's hot path; a failed publish is counted
/// (`mesh_events_failed_total`) and logged at debug, never retried — so an event goes
/// without a `Nats-Msg-Id`, and nats-server keeps no duplicate-window entry per event
/// (three per agent created).
///
/// ```swift
/// events.publish(.agentStarted, agent: id, reason: "restored from checkpoint")
/// ```
public final class EventPublisher: Sendable {
    private let js: JetStream
    private let subjects: Subjects
    private let node: NodeID
    private let logger: Logger
    private let published = Counter(label: "mesh_events_published_total")
    private let failed = Counter(label: "mesh_events_failed_total")

    /// - Parameter node: the publishing process, recorded as the event's node unless the
    ///   call names another.
    public init(js: JetStream, subjects: Subjects, node: NodeID, logger: Logger) {
        self.js = js
        self.subjects = subjects
        self.node = node
        self.logger = logger
    }

    /// Publishes one event.
    /// - Parameters:
    ///   - reason: why it happened, for the timeline (no payloads, no secrets).
    ///   - attributes: small structured details (shard, epoch, attempt, …).
    ///   - at: when it happened (default: now).
    public func publish(
        _ kind: EventKind, agent: AgentID? = nil, node: NodeID? = nil, reason: String, attributes: [String: String] = [:],
        payload: [UInt8] = [], at: Date = Date()
    ) {
        let id = TimeOrderedID.make()
        let event = Event(
            id: id, domain: kind.domain, type: kind.name, agentId: agent?.rawValue ?? "", nodeId: (node ?? self.node).rawValue,
            reason: reason, timestampUnixMs: Int64(at.timeIntervalSince1970 * 1000), attributes: attributes, payload: payload)
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = Event.messageType.rawValue
        let published = self.published
        let failed = self.failed
        let logger = self.logger
        do {
            try js.publishAsync(subjects.event(kind), payload: event.serializedBytes(), headers: headers, msgId: nil) { result in
                switch result {
                case .success: published.increment()
                case .failure(let error):
                    failed.increment()
                    logger.debug("event not stored", metadata: ["mesh.event": "\(kind)", "error": "\(error)"])
                }
            }
        } catch {
            failed.increment()
            logger.debug("event not published", metadata: ["mesh.event": "\(kind)", "error": "\(error)"])
        }
    }
}
