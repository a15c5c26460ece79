import Store

/// The gateway's PostgreSQL schema. Versions 200–299 belong to the gateway (other
/// services' migrations share `schema_migrations` with their own ranges).
///
/// - `api_keys`: one row per API key: id, name, role, the SHA-256 of the secret (hex; the
///   secret itself is never stored), who created it, when it was revoked.
/// - `audit_log`: every authentication failure and every mutation: who (key id and name,
///   never the secret), what (method and route), the target id, when, the outcome and status.
enum GatewaySchema {
    static let migrations: [Migration] = [
        Migration(
            version: 201, name: "gateway_api_keys_and_audit_log",
            sql: """
                CREATE TABLE api_keys (
                    id text PRIMARY KEY,
                    name text NOT NULL,
                    role text NOT NULL,
                    secret_hash text NOT NULL UNIQUE,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    created_by text,
                    revoked_at timestamptz
                );
                CREATE TABLE audit_log (
                    id bigserial PRIMARY KEY,
                    occurred_at timestamptz NOT NULL,
                    key_id text,
                    key_name text,
                    action text NOT NULL,
                    target text,
                    outcome text NOT NULL,
                    status integer NOT NULL,
                    request_id text
                );
                CREATE INDEX audit_log_time_idx ON audit_log (occurred_at);
                CREATE INDEX audit_log_key_idx ON audit_log (key_id, occurred_at);
                """),
    ]
}
