/// The bounds an agent spec may ask for, shared by the registry's spec check (which
/// refuses a spec outside them) and the worker's runtime (which enforces them again), so
/// a spec the registry accepts is always one a worker can start.
public enum AgentLimits {
    /// Largest mailbox (queued actions and tasks per agent): 65 536.
    public static let maxMailboxCapacity = 65_536
    /// Longest action deadline: 10 minutes.
    public static let maxActionTimeoutMs = 600_000
}
