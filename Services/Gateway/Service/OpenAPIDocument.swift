/// The OpenAPI 3.1 document of the gateway, served at `/openapi.json` (kept in step with
/// ``GatewayRoutes`` by a test: every route documented, every documented route served).
enum OpenAPIDocument {
    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Agent mesh gateway",
    "version": "0.1.0",
    "description": "HTTP/JSON API of the agent mesh. Every error is {\"error\":{\"code\":\"...\",\"message\":\"...\"}}. API routes need `Authorization: Bearer <key>`; roles viewer < operator < admin. Live events (`/api/v1/events`) are also served over WebSocket, where browsers may send the key as the subprotocol `bearer.<key>` next to `mesh.events.v1`."
  },
  "servers": [
    {
      "url": "/"
    }
  ],
  "security": [
    {
      "apiKey": []
    }
  ],
  "paths": {
    "/api/v1/alerts": {
      "get": {
        "operationId": "listAlerts",
        "summary": "Pending and firing alerts from the metrics collector, firing first; optionally the recently resolved ones (viewer). 503 when no collector runs.",
        "parameters": [
          {
            "name": "include_resolved",
            "in": "query",
            "schema": {
              "type": "string",
              "enum": [
                "true",
                "false"
              ]
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The alerts.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AlertList"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/metrics/summary": {
      "get": {
        "operationId": "metricsSummary",
        "summary": "Cluster throughput, error rates, latency percentiles (from merged histograms) and every process's CPU and memory over the last minutes (viewer). 503 when no collector runs.",
        "parameters": [
          {
            "name": "minutes",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 360
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The summary.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/MetricsSummary"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/metrics/series": {
      "get": {
        "operationId": "metricsSeries",
        "summary": "One metric's series over the last minutes: rate per second for counters, value for gauges, p50/p90/p99 for histograms (viewer). 404 for a metric no process reports; 503 when no collector runs.",
        "parameters": [
          {
            "name": "name",
            "in": "query",
            "required": true,
            "schema": {
              "type": "string",
              "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$"
            }
          },
          {
            "name": "minutes",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 360
            }
          },
          {
            "name": "service",
            "in": "query",
            "schema": {
              "type": "string",
              "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
            }
          },
          {
            "name": "instance",
            "in": "query",
            "schema": {
              "type": "string",
              "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
            }
          },
          {
            "name": "group_by",
            "in": "query",
            "schema": {
              "type": "string",
              "enum": [
                "cluster",
                "service",
                "instance",
                "series"
              ]
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The series.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/MetricSeriesList"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          }
        }
      }
    },
    "/": {
      "get": {
        "operationId": "dashboard",
        "summary": "The live dashboard (a static page; it calls the API with a key typed in)",
        "security": [],
        "responses": {
          "200": {
            "description": "The dashboard page.",
            "content": {
              "text/html": {
                "schema": {
                  "type": "string"
                }
              }
            }
          }
        }
      }
    },
    "/health": {
      "get": {
        "operationId": "health",
        "summary": "Liveness",
        "security": [],
        "responses": {
          "200": {
            "description": "The process serves HTTP and its task pool runs tasks.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Health"
                }
              }
            }
          },
          "503": {
            "description": "The process's task pool has run nothing for 5 s (wedged): restart it.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Health"
                }
              }
            }
          }
        }
      }
    },
    "/ready": {
      "get": {
        "operationId": "ready",
        "summary": "Readiness: NATS connected and the registry answering",
        "security": [],
        "responses": {
          "200": {
            "description": "Ready.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Ready"
                }
              }
            }
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          }
        }
      }
    },
    "/metrics": {
      "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics of this gateway process",
        "security": [],
        "responses": {
          "200": {
            "description": "Prometheus text exposition.",
            "content": {
              "text/plain": {
                "schema": {
                  "type": "string"
                }
              }
            }
          }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "operationId": "openAPI",
        "summary": "This document",
        "security": [],
        "responses": {
          "200": {
            "description": "The OpenAPI document.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/agents": {
      "get": {
        "operationId": "listAgents",
        "summary": "List agents (viewer)",
        "parameters": [
          {
            "name": "selector",
            "in": "query",
            "schema": {
              "type": "string",
              "maxLength": 4096
            },
            "description": "Label selector, e.g. `team=search,tier in (gold,silver)`."
          },
          {
            "name": "node",
            "in": "query",
            "schema": {
              "type": "string",
              "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
            }
          },
          {
            "name": "status",
            "in": "query",
            "schema": {
              "type": "string",
              "enum": [
                "pending",
                "starting",
                "running",
                "stopping",
                "stopped",
                "failed",
                "restarting"
              ]
            }
          },
          {
            "name": "cursor",
            "in": "query",
            "schema": {
              "type": "string",
              "maxLength": 1024
            },
            "description": "next_cursor of the previous page."
          },
          {
            "name": "limit",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 1000,
              "default": 100
            }
          }
        ],
        "responses": {
          "200": {
            "description": "A page of agents sorted by id.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AgentPage"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      },
      "post": {
        "operationId": "createAgent",
        "summary": "Create an agent (operator)",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/AgentSpec"
              }
            }
          }
        },
        "responses": {
          "201": {
            "description": "Created.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AgentRecord"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "409": {
            "$ref": "#/components/responses/Conflict"
          },
          "413": {
            "$ref": "#/components/responses/TooLarge"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/agents/{id}": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          },
          "description": "Agent id."
        }
      ],
      "get": {
        "operationId": "getAgent",
        "summary": "Get an agent (viewer)",
        "responses": {
          "200": {
            "description": "The agent.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AgentRecord"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      },
      "put": {
        "operationId": "updateAgent",
        "summary": "Update an agent's spec (operator); with `revision` (body) or If-Match, only if still at that revision",
        "parameters": [
          {
            "name": "If-Match",
            "in": "header",
            "schema": {
              "type": "string"
            },
            "description": "Expected revision."
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/AgentUpdate"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Updated.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AgentRecord"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "409": {
            "$ref": "#/components/responses/Conflict"
          },
          "413": {
            "$ref": "#/components/responses/TooLarge"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      },
      "delete": {
        "operationId": "deleteAgent",
        "summary": "Delete an agent (operator)",
        "parameters": [
          {
            "name": "revision",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 0
            },
            "description": "Expected revision; 0 or absent = any."
          }
        ],
        "responses": {
          "200": {
            "description": "The record as deleted.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AgentRecord"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "409": {
            "$ref": "#/components/responses/Conflict"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/agents/{id}/actions/{name}": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          },
          "description": "Agent id."
        },
        {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_.:-]{1,128}$"
          }
        }
      ],
      "post": {
        "operationId": "invokeAction",
        "summary": "Invoke an action (operator); the body is the action's payload",
        "parameters": [
          {
            "name": "timeout_ms",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 100
            },
            "description": "Deadline in ms, at least 100; default --action-timeout-ms, at most --request-timeout-ms."
          }
        ],
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {}
            },
            "application/octet-stream": {
              "schema": {
                "type": "string",
                "format": "binary"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "The agent's reply payload.",
            "content": {
              "application/json": {
                "schema": {}
              },
              "application/octet-stream": {
                "schema": {
                  "type": "string",
                  "format": "binary"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "413": {
            "$ref": "#/components/responses/TooLarge"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/agents/{id}/events": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          },
          "description": "Agent id."
        }
      ],
      "get": {
        "operationId": "agentEvents",
        "summary": "The agent's timeline, oldest first (viewer)",
        "parameters": [
          {
            "name": "cursor",
            "in": "query",
            "schema": {
              "type": "string",
              "maxLength": 512
            }
          },
          {
            "name": "limit",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 1000,
              "default": 100
            }
          }
        ],
        "responses": {
          "200": {
            "description": "A page of events.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EventPage"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/events": {
      "get": {
        "operationId": "liveEvents",
        "summary": "Live events as Server-Sent Events or over WebSocket (viewer), resumable",
        "description": "Server-Sent Events: each event is `id: <stream sequence>`, `event: <domain>.<type>`, `data: <JSON>`. Resume after a sequence with `?since=` or the `Last-Event-ID` header; without either only new events come. A client that does not keep up is sent `event: error` (code slow_consumer) and disconnected.\n\nWebSocket: the same URL with an HTTP/1.1 upgrade (`Upgrade: websocket`, answered 101). Each event is one text message carrying the same JSON as the SSE `data` (its `seq` is the stream sequence to resume from with `?since=`); the filters and `Last-Event-ID` work as for SSE. The key goes in `Authorization: Bearer <key>`, or, for browsers (which cannot set headers on a WebSocket), as the subprotocol `bearer.<key>` offered together with `mesh.events.v1`, which the gateway selects (the key is never echoed). A refused upgrade is answered with its status and the JSON error shape (400, 401, 403, 429, 503). Clients send nothing but pings and their close; frames over 1 KiB close the connection (1009). A client that does not keep up is closed with code 1013 and a reason ending in `since=<sequence>` (the last event it was sent, else where it started), to resume without a gap; when the event stream ends the close code is 1011; on gateway shutdown 1000.",
        "parameters": [
          {
            "name": "domain",
            "in": "query",
            "schema": {
              "type": "string",
              "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
            }
          },
          {
            "name": "type",
            "in": "query",
            "schema": {
              "type": "string",
              "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
            }
          },
          {
            "name": "agent",
            "in": "query",
            "schema": {
              "type": "string",
              "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
            }
          },
          {
            "name": "since",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 0
            }
          },
          {
            "name": "Last-Event-ID",
            "in": "header",
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "101": {
            "description": "Switching Protocols: the WebSocket upgrade was accepted; one text message per event follows.",
            "headers": {
              "Sec-WebSocket-Protocol": {
                "description": "`mesh.events.v1` when the client offered it.",
                "schema": {
                  "type": "string",
                  "enum": [
                    "mesh.events.v1"
                  ]
                }
              }
            }
          },
          "200": {
            "description": "An endless event stream.",
            "content": {
              "text/event-stream": {
                "schema": {
                  "type": "string"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          }
        }
      }
    },
    "/api/v1/nodes": {
      "get": {
        "operationId": "listNodes",
        "summary": "Worker nodes, from the supervisor leader's node table (viewer)",
        "responses": {
          "200": {
            "description": "The nodes.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/NodeList"
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/nodes/{id}/drain": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          },
          "description": "Node id."
        }
      ],
      "post": {
        "operationId": "drainNode",
        "summary": "Drain a node (operator): no new shards, its shards move to other nodes",
        "responses": {
          "200": {
            "description": "The node as the supervisor leader sees it, and how many nodes can take its shards.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DrainResult"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/nodes/{id}/undrain": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          },
          "description": "Node id."
        }
      ],
      "post": {
        "operationId": "undrainNode",
        "summary": "End an operator's drain of a node (operator)",
        "responses": {
          "200": {
            "description": "The node.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DrainResult"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/tasks": {
      "get": {
        "operationId": "listTasks",
        "summary": "The task history, newest first (viewer)",
        "parameters": [
          {
            "name": "agent",
            "in": "query",
            "schema": {
              "type": "string",
              "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
            },
            "description": "Only this agent's tasks."
          },
          {
            "name": "status",
            "in": "query",
            "schema": {
              "type": "string",
              "enum": [
                "submitted",
                "running",
                "retrying",
                "succeeded",
                "failed",
                "expired",
                "cancelled",
                "dead_lettered"
              ]
            }
          },
          {
            "name": "since",
            "in": "query",
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Submitted at or after (RFC 3339)."
          },
          {
            "name": "until",
            "in": "query",
            "schema": {
              "type": "string",
              "format": "date-time"
            },
            "description": "Submitted before (RFC 3339)."
          },
          {
            "name": "cursor",
            "in": "query",
            "schema": {
              "type": "string",
              "maxLength": 1024
            },
            "description": "next_cursor of the previous page."
          },
          {
            "name": "limit",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 1000,
              "default": 100
            }
          }
        ],
        "responses": {
          "200": {
            "description": "A page of tasks.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/TaskPage"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      },
      "post": {
        "operationId": "submitTask",
        "summary": "Submit a durable task (operator); idempotent with a key",
        "parameters": [
          {
            "name": "Idempotency-Key",
            "in": "header",
            "schema": {
              "type": "string",
              "minLength": 1,
              "maxLength": 128
            },
            "description": "Submissions of the same agent with the same key within the duplicate window are one task (also `idempotency_key` in the body)."
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/TaskSubmission"
              }
            }
          }
        },
        "responses": {
          "201": {
            "description": "Stored; the task will run.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/TaskSubmitted"
                }
              }
            }
          },
          "200": {
            "description": "An earlier submission with the same idempotency key: its task id.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/TaskSubmitted"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "413": {
            "$ref": "#/components/responses/TooLarge"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/tasks/{id}": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[0-9a-f-]{36}$"
          },
          "description": "Task id (a lowercase UUIDv7)."
        }
      ],
      "get": {
        "operationId": "getTask",
        "summary": "One task from the history (viewer)",
        "description": "A task is in the history once it has run (with its outcome, or `running`), or once it has waited about a second without running (`submitted`); until then the answer is 404.",
        "responses": {
          "200": {
            "description": "The task.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Task"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/tasks/{id}/cancel": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[0-9a-f-]{36}$"
          },
          "description": "Task id (a lowercase UUIDv7)."
        }
      ],
      "post": {
        "operationId": "cancelTask",
        "summary": "Cancel a pending or running task (operator); a finished task is not changed",
        "responses": {
          "202": {
            "description": "The cancel is recorded; the task ends `cancelled` when its worker reaches it.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/TaskCancelled"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/dead-letters": {
      "get": {
        "operationId": "listDeadLetters",
        "summary": "Tasks that ran out of attempts, oldest first (viewer)",
        "parameters": [
          {
            "name": "limit",
            "in": "query",
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 1000,
              "default": 100
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The dead letters.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeadLetterList"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/dead-letters/{id}/retry": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[0-9a-f-]{36}$"
          },
          "description": "Task id (a lowercase UUIDv7)."
        }
      ],
      "post": {
        "operationId": "retryDeadLetter",
        "summary": "Run a dead-lettered task again with fresh attempts (operator)",
        "responses": {
          "202": {
            "description": "Re-submitted.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/TaskRetried"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/keys": {
      "get": {
        "operationId": "listKeys",
        "summary": "List API keys (admin); secrets are never returned",
        "responses": {
          "200": {
            "description": "The keys.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/KeyList"
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      },
      "post": {
        "operationId": "createKey",
        "summary": "Create an API key (admin); the secret is in this answer only",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/KeyRequest"
              }
            }
          }
        },
        "responses": {
          "201": {
            "description": "Created.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/KeyCreated"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "413": {
            "$ref": "#/components/responses/TooLarge"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    },
    "/api/v1/keys/{id}": {
      "parameters": [
        {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          }
        }
      ],
      "delete": {
        "operationId": "revokeKey",
        "summary": "Revoke an API key (admin)",
        "responses": {
          "200": {
            "description": "Revoked.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/KeyRevoked"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/BadRequest"
          },
          "401": {
            "$ref": "#/components/responses/Unauthenticated"
          },
          "403": {
            "$ref": "#/components/responses/Forbidden"
          },
          "429": {
            "$ref": "#/components/responses/TooManyRequests"
          },
          "404": {
            "$ref": "#/components/responses/NotFound"
          },
          "503": {
            "$ref": "#/components/responses/Unavailable"
          },
          "504": {
            "$ref": "#/components/responses/Timeout"
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: mesh_ + 64 hex digits."
      }
    },
    "responses": {
      "BadRequest": {
        "description": "Invalid input (invalid_id, invalid_argument).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      },
      "Unauthenticated": {
        "description": "Missing or unknown API key (unauthenticated).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      },
      "Forbidden": {
        "description": "The key's role is too low (permission_denied).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      },
      "NotFound": {
        "description": "No such agent or key (not_found).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      },
      "Conflict": {
        "description": "Revision mismatch or id taken (conflict, already_exists).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      },
      "TooLarge": {
        "description": "Body too large (too_large).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      },
      "TooManyRequests": {
        "description": "Rate limit exceeded (rate_limited) or the agent's mailbox is full (busy).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        },
        "headers": {
          "Retry-After": {
            "schema": {
              "type": "integer"
            },
            "description": "Seconds."
          }
        }
      },
      "Unavailable": {
        "description": "NATS, the registry or PostgreSQL unavailable (unavailable).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        },
        "headers": {
          "Retry-After": {
            "schema": {
              "type": "integer"
            },
            "description": "Seconds."
          }
        }
      },
      "Timeout": {
        "description": "Deadline passed (timeout).",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/Error"
            }
          }
        }
      }
    },
    "schemas": {
      "Alert": {
        "type": "object",
        "required": [
          "rule",
          "severity",
          "summary",
          "state",
          "labels",
          "value",
          "threshold",
          "comparison",
          "active_since",
          "fired_at",
          "resolved_at"
        ],
        "properties": {
          "rule": {
            "type": "string"
          },
          "severity": {
            "type": "string",
            "enum": [
              "info",
              "warning",
              "critical"
            ]
          },
          "summary": {
            "type": "string"
          },
          "state": {
            "type": "string",
            "enum": [
              "pending",
              "firing",
              "resolved"
            ]
          },
          "labels": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "value": {
            "type": "number"
          },
          "threshold": {
            "type": "number"
          },
          "comparison": {
            "type": "string",
            "enum": [
              ">",
              ">=",
              "<",
              "<="
            ]
          },
          "active_since": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "fired_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "resolved_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          }
        }
      },
      "AlertList": {
        "type": "object",
        "required": [
          "items"
        ],
        "properties": {
          "items": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Alert"
            }
          }
        }
      },
      "MetricsSummary": {
        "type": "object",
        "required": [
          "generated_at",
          "window_seconds",
          "actions_per_second",
          "action_error_rate",
          "tasks_per_second",
          "task_failure_rate",
          "action_latency_ns",
          "task_latency_ns",
          "firing_alerts",
          "processes",
          "action_rate"
        ],
        "properties": {
          "generated_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "window_seconds": {
            "type": "integer"
          },
          "actions_per_second": {
            "type": "number"
          },
          "action_error_rate": {
            "type": "number"
          },
          "tasks_per_second": {
            "type": "number"
          },
          "task_failure_rate": {
            "type": "number"
          },
          "action_latency_ns": {
            "type": "object",
            "properties": {
              "p50": {
                "type": "integer"
              },
              "p90": {
                "type": "integer"
              },
              "p99": {
                "type": "integer"
              }
            }
          },
          "task_latency_ns": {
            "type": "object",
            "properties": {
              "p50": {
                "type": "integer"
              },
              "p99": {
                "type": "integer"
              }
            }
          },
          "firing_alerts": {
            "type": "integer"
          },
          "processes": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "service",
                "instance",
                "up"
              ],
              "properties": {
                "service": {
                  "type": "string"
                },
                "instance": {
                  "type": "string"
                },
                "up": {
                  "type": "boolean"
                },
                "cpu_percent": {
                  "type": "number"
                },
                "resident_bytes": {
                  "type": "integer"
                },
                "memory_percent": {
                  "type": "number"
                },
                "restarts": {
                  "type": "integer"
                },
                "last_seen": {
                  "type": [
                    "string",
                    "null"
                  ],
                  "format": "date-time"
                }
              }
            }
          },
          "action_rate": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/MetricPoint"
            }
          }
        }
      },
      "MetricPoint": {
        "type": "object",
        "required": [
          "t",
          "value"
        ],
        "properties": {
          "t": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "value": {
            "type": "number"
          },
          "p50": {
            "type": "number"
          },
          "p90": {
            "type": "number"
          },
          "p99": {
            "type": "number"
          },
          "count": {
            "type": "integer"
          }
        }
      },
      "MetricSeriesList": {
        "type": "object",
        "required": [
          "name",
          "step_ms",
          "series"
        ],
        "properties": {
          "name": {
            "type": "string"
          },
          "step_ms": {
            "type": "integer"
          },
          "series": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "name",
                "kind",
                "unit",
                "labels",
                "points"
              ],
              "properties": {
                "name": {
                  "type": "string"
                },
                "kind": {
                  "type": "string",
                  "enum": [
                    "counter",
                    "gauge",
                    "histogram"
                  ]
                },
                "unit": {
                  "type": "string"
                },
                "labels": {
                  "type": "object",
                  "additionalProperties": {
                    "type": "string"
                  }
                },
                "points": {
                  "type": "array",
                  "items": {
                    "$ref": "#/components/schemas/MetricPoint"
                  }
                }
              }
            }
          }
        }
      },
      "Error": {
        "type": "object",
        "required": [
          "error"
        ],
        "properties": {
          "error": {
            "type": "object",
            "required": [
              "code",
              "message"
            ],
            "properties": {
              "code": {
                "type": "string"
              },
              "message": {
                "type": "string"
              }
            }
          }
        }
      },
      "Health": {
        "type": "object",
        "required": [
          "status"
        ],
        "properties": {
          "status": {
            "type": "string"
          },
          "uptime_seconds": {
            "type": "integer"
          }
        }
      },
      "Ready": {
        "type": "object",
        "required": [
          "status"
        ],
        "properties": {
          "status": {
            "type": "string"
          },
          "checks": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          }
        }
      },
      "AgentSpec": {
        "type": "object",
        "required": [
          "id",
          "kind"
        ],
        "additionalProperties": false,
        "properties": {
          "id": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          },
          "kind": {
            "type": "string",
            "minLength": 1
          },
          "config": {
            "type": "object"
          },
          "labels": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "restart": {
            "type": "string",
            "enum": [
              "permanent",
              "transient",
              "temporary"
            ]
          },
          "group": {
            "type": "string"
          },
          "group_strategy": {
            "type": "string",
            "enum": [
              "one_for_one",
              "one_for_all",
              "rest_for_one"
            ]
          },
          "max_restarts": {
            "type": "integer",
            "minimum": 0,
            "maximum": 1000
          },
          "period_seconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": 86400
          },
          "mailbox_capacity": {
            "type": "integer",
            "minimum": 0,
            "maximum": 65536
          },
          "action_timeout_ms": {
            "type": "integer",
            "minimum": 0,
            "maximum": 600000
          }
        }
      },
      "AgentUpdate": {
        "type": "object",
        "description": "An AgentSpec (id optional, must match the path), optionally with revision; the state keys of a record are accepted and ignored.",
        "properties": {
          "revision": {
            "type": "integer",
            "minimum": 0
          }
        }
      },
      "AgentRecord": {
        "type": "object",
        "required": [
          "id",
          "kind",
          "generation",
          "revision",
          "status"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "kind": {
            "type": "string"
          },
          "config": {
            "type": "object"
          },
          "labels": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "restart": {
            "type": "string"
          },
          "group": {
            "type": "string"
          },
          "group_strategy": {
            "type": "string"
          },
          "max_restarts": {
            "type": "integer"
          },
          "period_seconds": {
            "type": "integer"
          },
          "mailbox_capacity": {
            "type": "integer"
          },
          "action_timeout_ms": {
            "type": "integer"
          },
          "generation": {
            "type": "integer"
          },
          "revision": {
            "type": "integer"
          },
          "status": {
            "type": "string"
          },
          "node": {
            "type": "string"
          },
          "shard": {
            "type": "integer"
          },
          "shard_epoch": {
            "type": "integer"
          },
          "restart_count": {
            "type": "integer"
          },
          "last_error": {
            "type": "object",
            "properties": {
              "code": {
                "type": "string"
              },
              "message": {
                "type": "string"
              }
            }
          },
          "created_at": {
            "type": "string",
            "format": "date-time"
          },
          "updated_at": {
            "type": "string",
            "format": "date-time"
          },
          "started_at": {
            "type": "string",
            "format": "date-time"
          }
        }
      },
      "AgentPage": {
        "type": "object",
        "required": [
          "items",
          "next_cursor"
        ],
        "properties": {
          "items": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/AgentRecord"
            }
          },
          "next_cursor": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "Event": {
        "type": "object",
        "required": [
          "event_id",
          "type",
          "reason",
          "occurred_at",
          "attributes"
        ],
        "properties": {
          "event_id": {
            "type": "string"
          },
          "type": {
            "type": "string"
          },
          "node": {
            "type": "string"
          },
          "reason": {
            "type": "string"
          },
          "attributes": {
            "type": "object"
          },
          "occurred_at": {
            "type": "string",
            "format": "date-time"
          }
        }
      },
      "EventPage": {
        "type": "object",
        "required": [
          "items",
          "next_cursor"
        ],
        "properties": {
          "items": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Event"
            }
          },
          "next_cursor": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "Node": {
        "type": "object",
        "required": [
          "node",
          "alive",
          "draining",
          "shards"
        ],
        "properties": {
          "node": {
            "type": "string"
          },
          "instance": {
            "type": "string"
          },
          "alive": {
            "type": "boolean"
          },
          "draining": {
            "type": "boolean"
          },
          "drain_requested": {
            "type": "boolean"
          },
          "shards": {
            "type": "integer"
          },
          "agents": {
            "type": "integer"
          },
          "capacity": {
            "type": "integer"
          },
          "load": {
            "type": "number"
          },
          "version": {
            "type": "string"
          },
          "last_heartbeat": {
            "type": "string",
            "format": "date-time"
          }
        }
      },
      "NodeList": {
        "type": "object",
        "required": [
          "items"
        ],
        "properties": {
          "items": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Node"
            }
          },
          "leader": {
            "type": "string"
          }
        }
      },
      "DrainResult": {
        "type": "object",
        "required": [
          "node",
          "candidates"
        ],
        "properties": {
          "node": {
            "$ref": "#/components/schemas/Node"
          },
          "candidates": {
            "type": "integer"
          }
        }
      },
      "TaskSubmission": {
        "type": "object",
        "required": [
          "agent",
          "action"
        ],
        "additionalProperties": false,
        "properties": {
          "agent": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"
          },
          "action": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128
          },
          "payload": {
            "description": "Input of the action: any JSON value; a string is sent as its UTF-8 bytes (at most 256 KiB)."
          },
          "priority": {
            "type": "string",
            "enum": [
              "high",
              "normal",
              "low"
            ],
            "default": "normal"
          },
          "deadline": {
            "type": "string",
            "format": "date-time",
            "description": "Past this time the task is not run (it ends `expired`)."
          },
          "deadline_ms": {
            "type": "integer",
            "minimum": 1,
            "maximum": 31622400000,
            "description": "The deadline as milliseconds from now (instead of deadline)."
          },
          "max_attempts": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 5
          },
          "idempotency_key": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128
          }
        }
      },
      "TaskSubmitted": {
        "type": "object",
        "required": [
          "task_id",
          "duplicate"
        ],
        "properties": {
          "task_id": {
            "type": "string"
          },
          "duplicate": {
            "type": "boolean"
          }
        }
      },
      "Task": {
        "type": "object",
        "required": [
          "task_id",
          "agent",
          "action",
          "priority",
          "state",
          "attempts",
          "max_attempts",
          "node",
          "submitted_at",
          "started_at",
          "finished_at",
          "deadline",
          "rerun"
        ],
        "properties": {
          "task_id": {
            "type": "string"
          },
          "agent": {
            "type": "string"
          },
          "action": {
            "type": "string"
          },
          "priority": {
            "type": "string",
            "enum": [
              "high",
              "normal",
              "low"
            ]
          },
          "state": {
            "type": "string",
            "enum": [
              "submitted",
              "running",
              "retrying",
              "succeeded",
              "failed",
              "expired",
              "cancelled",
              "dead_lettered",
              "unspecified",
              "unrecognized"
            ]
          },
          "attempts": {
            "type": "integer"
          },
          "max_attempts": {
            "type": "integer"
          },
          "node": {
            "type": "string"
          },
          "submitted_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "started_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "finished_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "deadline": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          },
          "rerun": {
            "type": "integer"
          },
          "idempotency_key": {
            "type": "string"
          },
          "result": {
            "type": "string",
            "description": "The action's output as UTF-8 text (succeeded tasks)."
          },
          "error": {
            "type": "object",
            "required": [
              "code",
              "message"
            ],
            "properties": {
              "code": {
                "type": "string"
              },
              "message": {
                "type": "string"
              }
            }
          }
        }
      },
      "TaskPage": {
        "type": "object",
        "required": [
          "items",
          "next_cursor"
        ],
        "properties": {
          "items": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Task"
            }
          },
          "next_cursor": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      },
      "TaskCancelled": {
        "type": "object",
        "required": [
          "task_id",
          "cancel_requested"
        ],
        "properties": {
          "task_id": {
            "type": "string"
          },
          "cancel_requested": {
            "type": "boolean"
          }
        }
      },
      "TaskRetried": {
        "type": "object",
        "required": [
          "task_id",
          "retried"
        ],
        "properties": {
          "task_id": {
            "type": "string"
          },
          "retried": {
            "type": "boolean"
          }
        }
      },
      "DeadLetter": {
        "type": "object",
        "required": [
          "sequence",
          "task_id",
          "agent",
          "action",
          "attempts",
          "node",
          "error",
          "dead_lettered_at"
        ],
        "properties": {
          "sequence": {
            "type": "integer",
            "description": "Position in stream MESH_TASKS_DLQ."
          },
          "task_id": {
            "type": "string"
          },
          "agent": {
            "type": "string"
          },
          "action": {
            "type": "string"
          },
          "attempts": {
            "type": "integer"
          },
          "node": {
            "type": "string"
          },
          "error": {
            "oneOf": [
              {
                "type": "object",
                "required": [
                  "code",
                  "message"
                ],
                "properties": {
                  "code": {
                    "type": "string"
                  },
                  "message": {
                    "type": "string"
                  }
                }
              },
              {
                "type": "null"
              }
            ]
          },
          "dead_lettered_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          }
        }
      },
      "DeadLetterList": {
        "type": "object",
        "required": [
          "items"
        ],
        "properties": {
          "items": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/DeadLetter"
            }
          }
        }
      },
      "Key": {
        "type": "object",
        "required": [
          "id",
          "name",
          "role",
          "created_at"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "name": {
            "type": "string"
          },
          "role": {
            "type": "string",
            "enum": [
              "viewer",
              "operator",
              "admin"
            ]
          },
          "created_at": {
            "type": "string",
            "format": "date-time"
          },
          "created_by": {
            "type": [
              "string",
              "null"
            ]
          },
          "revoked_at": {
            "type": [
              "string",
              "null"
            ],
            "format": "date-time"
          }
        }
      },
      "KeyList": {
        "type": "object",
        "required": [
          "items"
        ],
        "properties": {
          "items": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Key"
            }
          }
        }
      },
      "KeyRequest": {
        "type": "object",
        "required": [
          "role"
        ],
        "additionalProperties": false,
        "properties": {
          "role": {
            "type": "string",
            "enum": [
              "viewer",
              "operator",
              "admin"
            ]
          },
          "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64
          }
        }
      },
      "KeyCreated": {
        "allOf": [
          {
            "$ref": "#/components/schemas/Key"
          },
          {
            "type": "object",
            "required": [
              "secret"
            ],
            "properties": {
              "secret": {
                "type": "string"
              }
            }
          }
        ]
      },
      "KeyRevoked": {
        "type": "object",
        "required": [
          "id",
          "revoked"
        ],
        "properties": {
          "id": {
            "type": "string"
          },
          "revoked": {
            "type": "boolean"
          }
        }
      }
    }
  }
}
"""#
}
