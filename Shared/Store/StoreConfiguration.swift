/// How a `Store` connects and sizes its pool.
///
/// ```swift
/// var configuration = StoreConfiguration(connectionString: "host=db port=5432 dbname=mesh user=mesh")
/// configuration.poolSize = 8
/// let store = Store(configuration: configuration, logger: logger)
/// ```
///
/// The connection string is secret-bearing (it may hold a password): it is never printed,
/// and `description` shows only the pool settings.
public struct StoreConfiguration: Sendable, CustomStringConvertible {
    /// A libpq connection string, `key=value …` or a `postgresql://` URI. Never printed.
    public var connectionString: String
    /// The most connections the pool opens. Default 4.
    public var poolSize: Int
    /// How long `query`/`execute`/`transaction` wait for a free connection before failing
    /// with `StoreError.Code.poolTimeout`. Default 5 s.
    public var acquireTimeout: Duration
    /// How often idle connections are probed with `SELECT 1` (connections that were used
    /// more recently than this are not probed); nil disables the probe. Default 30 s.
    /// Independently, every idle connection is checked cheaply (no round trip) when it
    /// is handed out, so a connection the server closed is never given to a caller.
    public var healthCheckInterval: Duration?
    /// libpq `connect_timeout` for opening a connection (whole seconds, at least 2).
    /// Default 5 s.
    public var connectTimeout: Duration
    /// `application_name` shown in `pg_stat_activity`; nil keeps the connection string's.
    /// Default nil.
    public var applicationName: String?

    public init(
        connectionString: String, poolSize: Int = 4, acquireTimeout: Duration = .seconds(5),
        healthCheckInterval: Duration? = .seconds(30), connectTimeout: Duration = .seconds(5),
        applicationName: String? = nil
    ) {
        self.connectionString = connectionString
        self.poolSize = poolSize
        self.acquireTimeout = acquireTimeout
        self.healthCheckInterval = healthCheckInterval
        self.connectTimeout = connectTimeout
        self.applicationName = applicationName
    }

    public var description: String {
        "StoreConfiguration(poolSize: \(poolSize), acquireTimeout: \(acquireTimeout), "
            + "healthCheckInterval: \(healthCheckInterval.map { "\($0)" } ?? "off"), connectTimeout: \(connectTimeout), "
            + "applicationName: \(applicationName ?? "-"), connectionString: <redacted>)"
    }
}
