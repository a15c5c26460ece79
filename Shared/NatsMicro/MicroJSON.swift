public import Foundation

/// `io.nats.micro.v1.ping_response`.
public struct MicroPingResponse: Codable, Sendable, Equatable {
    public var type = "io.nats.micro.v1.ping_response"
    public var name: String
    public var id: String
    public var version: String
    public var metadata: [String: String]

    public init(name: String, id: String, version: String, metadata: [String: String]) {
        self.name = name
        self.id = id
        self.version = version
        self.metadata = metadata
    }
}

/// An endpoint in `io.nats.micro.v1.info_response`.
public struct MicroEndpointInfo: Codable, Sendable, Equatable {
    public var name: String
    public var subject: String
    public var queueGroup: String?
    public var metadata: [String: String]

    public init(name: String, subject: String, queueGroup: String?, metadata: [String: String]) {
        self.name = name
        self.subject = subject
        self.queueGroup = queueGroup
        self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey {
        case name, subject, metadata
        case queueGroup = "queue_group"
    }
}

/// `io.nats.micro.v1.info_response`.
public struct MicroInfoResponse: Codable, Sendable, Equatable {
    public var type = "io.nats.micro.v1.info_response"
    public var name: String
    public var id: String
    public var version: String
    public var metadata: [String: String]
    public var description: String
    public var endpoints: [MicroEndpointInfo]

    public init(name: String, id: String, version: String, metadata: [String: String], description: String, endpoints: [MicroEndpointInfo]) {
        self.name = name
        self.id = id
        self.version = version
        self.metadata = metadata
        self.description = description
        self.endpoints = endpoints
    }
}

/// An endpoint in `io.nats.micro.v1.stats_response`; times in nanoseconds.
public struct MicroEndpointStats: Codable, Sendable, Equatable {
    public var name: String
    public var subject: String
    public var queueGroup: String?
    public var numRequests: Int
    public var numErrors: Int
    public var lastError: String
    public var processingTime: Int64
    public var averageProcessingTime: Int64

    enum CodingKeys: String, CodingKey {
        case name, subject
        case queueGroup = "queue_group"
        case numRequests = "num_requests"
        case numErrors = "num_errors"
        case lastError = "last_error"
        case processingTime = "processing_time"
        case averageProcessingTime = "average_processing_time"
    }
}

/// `io.nats.micro.v1.stats_response`.
public struct MicroStatsResponse: Codable, Sendable, Equatable {
    public var type = "io.nats.micro.v1.stats_response"
    public var name: String
    public var id: String
    public var version: String
    public var metadata: [String: String]
    public var started: String
    public var endpoints: [MicroEndpointStats]

    public init(name: String, id: String, version: String, metadata: [String: String], started: String, endpoints: [MicroEndpointStats]) {
        self.name = name
        self.id = id
        self.version = version
        self.metadata = metadata
        self.started = started
        self.endpoints = endpoints
    }
}

/// JSON encoding of discovery responses.
public enum MicroJSON {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(value))) ?? Array("{}".utf8)
    }

    /// Decodes a discovery response.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }

    /// RFC 3339 with fractional seconds in UTC, as micro's `started`.
    static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
