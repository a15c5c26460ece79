import Foundation
import HTTPTypes
import Hummingbird
import MeshClient
import MeshCore
import MeshProto

/// The durable-task endpoints: submit, list and read the history, cancel, and the
/// dead-letter queue (``TaskClient`` over NATS; the history is the registry's).
extension GatewayAPI {
    static let idempotencyKeyHeader = HTTPField.Name("idempotency-key")!

    /// `POST /api/v1/tasks`: 201 with the new task's id, or 200 with the original id when
    /// the idempotency key (body or `Idempotency-Key` header) was seen within the window.
    func submitTask(_ request: Request) async throws -> Response {
        let object = try await Self.jsonObject(request, limit: options.maxBodyBytes)
        let headerKey = request.headers[Self.idempotencyKeyHeader]
        let submission = try TaskDocument.submission(object: object, idempotencyKey: headerKey)
        try requireNATS()
        let submitted = try await tasks.submit(submission)
        var response = Self.json(["task_id": submitted.taskId, "duplicate": submitted.duplicate], status: submitted.duplicate ? .ok : .created)
        response.headers[.location] = "/api/v1/tasks/\(submitted.taskId)"
        return response
    }

    /// `GET /api/v1/tasks?agent=&status=&since=&until=&cursor=&limit=`: a page of the
    /// history, newest first.
    func listTasks(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let agent = try query["agent"].flatMap { $0.isEmpty ? nil : try AgentID(String($0)) }
        var state: TaskState?
        if let raw = query["status"], !raw.isEmpty {
            guard let parsed = TaskState(name: String(raw)) else {
                throw APIError.badRequest("status must be one of \(TaskState.allCases.map(\.name).joined(separator: ", "))")
            }
            state = parsed
        }
        let from = try Self.queryTime(request, "since")
        let to = try Self.queryTime(request, "until")
        let cursor = query["cursor"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        guard (cursor?.utf8.count ?? 0) <= 1_024 else { throw APIError.badRequest("cursor is longer than 1024 bytes") }
        let limit = try Self.queryInt(request, "limit", range: 1...TaskClient.maxLimit) ?? TaskClient.defaultLimit
        try requireNATS()
        let page = try await tasks.list(agent: agent, state: state, from: from, to: to, cursor: cursor, limit: limit)
        return Self.json(["items": page.tasks.map(TaskDocument.object), "next_cursor": page.nextCursor.map { $0 as Any } ?? NSNull()])
    }

    /// `GET /api/v1/tasks/{id}`.
    func getTask(_ context: GatewayRequestContext) async throws -> Response {
        let id = try Self.taskID(context)
        try requireNATS()
        return Self.json(TaskDocument.object(try await tasks.get(id)))
    }

    /// `POST /api/v1/tasks/{id}/cancel`: 202, the cancel is carried out by the worker.
    func cancelTask(_ context: GatewayRequestContext) async throws -> Response {
        let id = try Self.taskID(context)
        try requireNATS()
        try await tasks.cancel(id)
        return Self.json(["task_id": id, "cancel_requested": true], status: .accepted)
    }

    /// `GET /api/v1/dead-letters?limit=`: dead-lettered tasks, oldest first.
    func listDeadLetters(_ request: Request) async throws -> Response {
        let limit = try Self.queryInt(request, "limit", range: 1...TaskClient.maxLimit) ?? TaskClient.defaultLimit
        try requireNATS()
        return Self.json(["items": try await tasks.deadLetters(limit: limit).map(TaskDocument.object)])
    }

    /// `POST /api/v1/dead-letters/{id}/retry`: the task runs again with fresh attempts.
    func retryDeadLetter(_ context: GatewayRequestContext) async throws -> Response {
        let id = try Self.taskID(context)
        try requireNATS()
        let submitted = try await tasks.retryDeadLetter(id)
        return Self.json(["task_id": submitted.taskId, "retried": true], status: .accepted)
    }

    static func taskID(_ context: GatewayRequestContext) throws -> String {
        let raw = context.parameters.get("id") ?? ""
        do { try TaskClient.validateTaskID(raw) } catch {
            throw APIError(.badRequest, code: MeshError.Code.invalidID.rawValue, "invalid task id")
        }
        return raw
    }

    static func queryTime(_ request: Request, _ name: String) throws -> Date? {
        guard let raw = request.uri.queryParameters[Substring(name)], !raw.isEmpty else { return nil }
        guard let date = parseRFC3339(String(raw)) else {
            throw APIError.badRequest("\(name) must be an RFC 3339 time")
        }
        return date
    }
}
