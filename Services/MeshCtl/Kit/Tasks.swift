import ArgumentParser
import Foundation
import MeshClient
import MeshCore
import MeshProto
import Nats

/// `meshctl tasks submit|ls|get|cancel` and `meshctl tasks dlq ls|retry`: durable tasks.
struct Tasks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit, list, inspect and cancel durable tasks; the dead-letter queue.",
        subcommands: [Submit.self, List.self, Get.self, Cancel.self, DeadLetters.self])

    /// Connects and makes a task client.
    static func client(_ options: MeshConnectionOptions) async throws -> (NatsConnection, TaskClient) {
        let (nats, subjects, shardMap) = try await options.connect()
        do {
            return (nats, try TaskClient(connection: nats, subjects: subjects, shardMap: shardMap))
        } catch {
            nats.close()
            throw CLIError("\(error.code): \(error.message)")
        }
    }

    static func fail(_ error: MeshError) -> CLIError { CLIError("\(error.code): \(error.message)") }

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Submit a task; prints its id (the original one for a repeated --key).")

        @Argument(help: "Agent id.") var agent: String
        @Argument(help: "Action name.") var action: String
        @Option(name: .customLong("data"), help: "Payload, usually JSON (default: empty).") var data: String = ""
        @Option(name: .customLong("priority"), help: "high, normal or low.") var priority: String = "normal"
        @Option(name: .customLong("key"), help: "Idempotency key: submissions with the same key are one task.") var key: String?
        @Option(name: .customLong("deadline-ms"), help: "Expire the task if it has not run this many ms from now.") var deadlineMs: Int?
        @Option(name: .customLong("max-attempts"), help: "Attempts before the dead-letter queue (1...100, default 5).") var maxAttempts: Int?
        @Flag(name: .customLong("wait"), help: "Wait until the task is over and print its record.") var wait = false
        @Option(name: .customLong("timeout-ms"), help: "With --wait: give up after this many ms.") var timeoutMs: Int = 30_000
        @Option(name: [.customShort("o"), .customLong("output")], help: "text or json.") var output: String = "text"
        @OptionGroup var connection: MeshConnectionOptions

        func validate() throws {
            do { _ = try AgentID(agent) } catch { throw ValidationError(error.message) }
            guard TaskDocument.priority(named: priority) != nil else { throw ValidationError("--priority must be high, normal or low") }
            guard data.utf8.count <= TaskRules.maxPayloadBytes else { throw ValidationError("--data is limited to \(TaskRules.maxPayloadBytes) bytes") }
            if let deadlineMs { guard deadlineMs > 0 else { throw ValidationError("--deadline-ms must be positive") } }
            guard ["text", "json"].contains(output) else { throw ValidationError("-o must be text or json") }
        }

        func run() async throws {
            let (nats, client) = try await Tasks.client(connection)
            defer { nats.close() }
            let submission = TaskSubmission(
                agent: try AgentID(agent), action: action, payload: Array(data.utf8), priority: TaskDocument.priority(named: priority)!,
                deadline: deadlineMs.map { Date().addingTimeInterval(Double($0) / 1000) }, maxAttempts: maxAttempts, idempotencyKey: key)
            let submitted: SubmittedTask
            do { submitted = try await client.submit(submission) } catch { throw Tasks.fail(error) }
            guard wait else {
                if output == "json" {
                    printJSON(["task_id": submitted.taskId, "duplicate": submitted.duplicate], compact: true)
                } else {
                    say(submitted.taskId + (submitted.duplicate ? " (existing)" : ""))
                }
                return
            }
            let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
            while ContinuousClock.now < deadline {
                if let record = try? await client.get(submitted.taskId), record.state.isTerminal {
                    Tasks.print([record], output: output, single: true)
                    if record.state != .succeeded { throw ExitCode(1) }
                    return
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw CLIError("timeout: task \(submitted.taskId) is not over after \(timeoutMs) ms")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List tasks from the history, newest first.")

        @Option(name: .customLong("agent"), help: "Only this agent's tasks.") var agent: String?
        @Option(name: .customLong("status"), help: "Only tasks in this state (submitted, running, retrying, succeeded, failed, expired, cancelled, dead_lettered).")
        var status: String?
        @Option(name: .customLong("since"), help: "Submitted within the last N seconds.") var sinceSeconds: Int?
        @Option(name: .customLong("limit"), help: "Page size, 1...1000.") var limit: Int = 100
        @Option(name: .customLong("cursor"), help: "The next-page cursor a previous page printed.") var cursor: String?
        @Option(name: [.customShort("o"), .customLong("output")], help: "text or json.") var output: String = "text"
        @OptionGroup var connection: MeshConnectionOptions

        func validate() throws {
            if let agent { do { _ = try AgentID(agent) } catch { throw ValidationError(error.message) } }
            if let status, TaskState(name: status) == nil { throw ValidationError("unknown --status \(status)") }
            guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be in 1...1000") }
            guard ["text", "json"].contains(output) else { throw ValidationError("-o must be text or json") }
        }

        func run() async throws {
            let (nats, client) = try await Tasks.client(connection)
            defer { nats.close() }
            let page: TaskPage
            let agentID = try agent.map { try AgentID($0) }
            do {
                page = try await client.list(
                    agent: agentID, state: status.flatMap { TaskState(name: $0) },
                    from: sinceSeconds.map { Date().addingTimeInterval(-Double($0)) }, cursor: cursor, limit: limit)
            } catch { throw Tasks.fail(error) }
            Tasks.print(page.tasks, output: output, single: false)
            if let next = page.nextCursor, output == "text" { say("next page: --cursor \(next)") }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one task from the history.")
        @Argument(help: "Task id.") var taskId: String
        @Option(name: [.customShort("o"), .customLong("output")], help: "text or json.") var output: String = "text"
        @OptionGroup var connection: MeshConnectionOptions

        func run() async throws {
            let (nats, client) = try await Tasks.client(connection)
            defer { nats.close() }
            do { Tasks.print([try await client.get(taskId)], output: output, single: true) } catch { throw Tasks.fail(error) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a pending or running task.")
        @Argument(help: "Task id.") var taskId: String
        @OptionGroup var connection: MeshConnectionOptions

        func run() async throws {
            let (nats, client) = try await Tasks.client(connection)
            defer { nats.close() }
            do { try await client.cancel(taskId) } catch { throw Tasks.fail(error) }
            say("cancel requested for \(taskId)")
        }
    }

    struct DeadLetters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dlq", abstract: "The dead-letter queue: tasks out of attempts.", subcommands: [DLQList.self, DLQRetry.self])
    }

    struct DLQList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List dead-lettered tasks, oldest first.")
        @Option(name: .customLong("limit"), help: "At most this many, 1...1000.") var limit: Int = 100
        @Option(name: [.customShort("o"), .customLong("output")], help: "text or json.") var output: String = "text"
        @OptionGroup var connection: MeshConnectionOptions

        func run() async throws {
            let (nats, client) = try await Tasks.client(connection)
            defer { nats.close() }
            let entries: [DeadLetterEntry]
            do { entries = try await client.deadLetters(limit: limit) } catch { throw Tasks.fail(error) }
            if output == "json" {
                let objects = entries.map(TaskDocument.object)
                printJSON(objects, compact: true)
                return
            }
            let rows = entries.map { entry in
                let letter = entry.deadLetter
                return [
                    letter.task.taskId, letter.task.agentId, letter.task.action, String(letter.attempts),
                    letter.error.map { "\($0.code): \($0.message)" } ?? "",
                ]
            }
            say(Table.render([["TASK", "AGENT", "ACTION", "ATTEMPTS", "ERROR"]] + rows))
        }
    }

    struct DLQRetry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "retry", abstract: "Run a dead-lettered task again (fresh attempts).")
        @Argument(help: "Task id.") var taskId: String
        @OptionGroup var connection: MeshConnectionOptions

        func run() async throws {
            let (nats, client) = try await Tasks.client(connection)
            defer { nats.close() }
            do { _ = try await client.retryDeadLetter(taskId) } catch { throw Tasks.fail(error) }
            say("re-submitted \(taskId)")
        }
    }

    // MARK: Output

    static func print(_ records: [TaskRecord], output: String, single: Bool) {
        if output == "json" {
            let objects = records.map(TaskDocument.object)
            printJSON(single && objects.count == 1 ? objects[0] : objects, compact: true)
            return
        }
        if single, let record = records.first {
            for (key, value) in TaskDocument.object(record).sorted(by: { $0.key < $1.key }) { say("\(key): \(value)") }
            return
        }
        let rows = records.map { [$0.taskId, $0.agentId, $0.action, $0.state.name, String($0.attempts), $0.nodeId] }
        say(Table.render([["TASK", "AGENT", "ACTION", "STATE", "ATTEMPTS", "NODE"]] + rows))
    }
}
