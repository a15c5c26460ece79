import Dispatch

/// Runs short blocking calls (the C client's KV and JetStream management requests, which
/// wait for a server round trip) off Swift's cooperative thread pool.
///
/// The pool has one thread per core; a call that blocks one of them for a server round trip
/// — or for its whole timeout while the server is unreachable — stalls every task of the
/// process meanwhile (agent mailboxes included). Hot paths hand such calls to this queue.
///
/// ```swift
/// let entry = try await BlockingIO.run { try kv.get(key) }
/// ```
public enum BlockingIO {
    private static let queue = DispatchQueue(label: "mesh.blocking-io", qos: .userInitiated, attributes: .concurrent)

    /// Runs `body` on a dispatch thread and returns its result.
    public static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(E) -> T in try body() })
            }
        }
        return try result.get()
    }
}
