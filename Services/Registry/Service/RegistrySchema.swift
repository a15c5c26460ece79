import Store

/// The registry's PostgreSQL schema: the query copy of the agent directory and the agent
/// timeline. Versions 100–199 belong to the registry (other services' migrations share the
/// `schema_migrations` table with their own ranges).
///
/// - `agents`: one row per agent id ever created: the spec's columns (from KV
///   `mesh_agents`, guarded by `revision`), the run status columns (from KV `mesh_status`,
///   guarded by `status_revision`), `deleted_at` once deleted (a later re-create clears it).
/// - `agent_events`: the timeline (created, updated, placed, started, failed, restarted,
///   migrated, stopped, deleted, rejected), one row per event id.
enum RegistrySchema {
    static let migrations: [Migration] = [
        Migration(
            version: 101, name: "registry_agents_and_timeline",
            sql: """
                CREATE TABLE agents (
                    id text PRIMARY KEY,
                    kind text NOT NULL DEFAULT '',
                    generation bigint NOT NULL DEFAULT 0,
                    revision bigint NOT NULL DEFAULT 0,
                    labels jsonb NOT NULL DEFAULT '{}',
                    spec bytea,
                    status text,
                    node_id text,
                    shard integer NOT NULL DEFAULT 0,
                    restart_count integer NOT NULL DEFAULT 0,
                    status_revision bigint NOT NULL DEFAULT 0,
                    created_at timestamptz,
                    updated_at timestamptz,
                    deleted_at timestamptz
                );
                CREATE INDEX agents_node_idx ON agents (node_id) WHERE deleted_at IS NULL;
                CREATE INDEX agents_labels_idx ON agents USING gin (labels);
                CREATE TABLE agent_events (
                    event_id text PRIMARY KEY,
                    agent_id text NOT NULL,
                    type text NOT NULL,
                    node_id text,
                    reason text NOT NULL DEFAULT '',
                    attributes jsonb NOT NULL DEFAULT '{}',
                    occurred_at timestamptz NOT NULL
                );
                CREATE INDEX agent_events_agent_time_idx ON agent_events (agent_id, occurred_at);
                """),
    ]
}
