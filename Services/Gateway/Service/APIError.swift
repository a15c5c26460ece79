import Foundation
public import Hummingbird
public import MeshCore

/// An error the gateway answers with: a stable code, a message safe to show, the HTTP
/// status, and for 429/503 a retry hint. Every failure becomes one of these and then the
/// one JSON shape `{"error":{"code":"…","message":"…"}}` (``APIError/body``).
///
/// ```swift
/// throw APIError(.badRequest, code: "invalid_argument", "limit must be in 1...1000")
/// throw APIError(MeshError(.notFound, "no agent counter-1"))   // → 404 not_found
/// ```
public struct APIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// The stable code (the mesh's error codes plus the gateway's own).
    public var code: String
    /// A message safe to show and log: never a secret, SQL or a payload.
    public var message: String
    /// For 429 and 503: seconds after which to retry (the `Retry-After` header).
    public var retryAfterSeconds: Int?

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// The mesh error mapped to its HTTP status by ``status(for:)``.
    public init(_ error: MeshError) {
        let status = Self.status(for: error.code)
        var retry: Int?
        if let after = error.retryAfter {
            retry = max(1, Int((after.totalSecondsValue).rounded(.up)))
        } else if status == .serviceUnavailable || status == .tooManyRequests {
            retry = 1
        }
        self.init(status, code: error.code.rawValue, error.message, retryAfterSeconds: retry)
    }

    /// The one place a mesh error code becomes an HTTP status.
    ///
    /// | code | status |
    /// |---|---|
    /// | `invalid_id`, `invalid_argument` | 400 |
    /// | `unauthenticated` | 401 |
    /// | `permission_denied` | 403 |
    /// | `not_found` | 404 |
    /// | `already_exists`, `conflict` | 409 |
    /// | `too_large` | 413 |
    /// | `busy` | 429 (the agent's mailbox is full) |
    /// | `unavailable`, `no_responders`, `stale_epoch` | 503 |
    /// | `timeout` | 504 |
    /// | `internal` and anything unknown | 500 |
    public static func status(for code: MeshError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidID, .invalidArgument: .badRequest
        case .unauthenticated: .unauthorized
        case .permissionDenied: .forbidden
        case .notFound: .notFound
        case .alreadyExists, .conflict: .conflict
        case .tooLarge: .contentTooLarge
        case .busy: .tooManyRequests
        case .unavailable, .noResponders, .staleEpoch: .serviceUnavailable
        case .timeout: .gatewayTimeout
        default: .internalServerError
        }
    }

    /// `{"error":{"code":…,"message":…}}` as JSON bytes.
    public var body: [UInt8] {
        let object: [String: Any] = ["error": ["code": code, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map(Array.init) ?? Array(
            #"{"error":{"code":"internal","message":"error"}}"#.utf8)
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    // Common errors.
    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, code: MeshError.Code.invalidArgument.rawValue, message) }
    static let unauthenticated = APIError(
        .unauthorized, code: MeshError.Code.unauthenticated.rawValue, "missing or unknown API key: send Authorization: Bearer <key>")
    static func forbidden(_ needed: Role, _ have: Role) -> APIError {
        APIError(.forbidden, code: MeshError.Code.permissionDenied.rawValue, "this needs role \(needed.rawValue); the key has \(have.rawValue)")
    }
    static func tooLarge(_ limit: Int) -> APIError {
        APIError(.contentTooLarge, code: MeshError.Code.tooLarge.rawValue, "request body exceeds \(limit) bytes")
    }
    static let natsDown = APIError(
        .serviceUnavailable, code: MeshError.Code.unavailable.rawValue, "the gateway is not connected to NATS", retryAfterSeconds: 1)
    static let notFoundRoute = APIError(.notFound, code: MeshError.Code.notFound.rawValue, "no such endpoint")
}

extension Duration {
    var totalSecondsValue: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
