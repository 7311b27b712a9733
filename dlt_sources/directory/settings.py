"""Directory sections and their column types."""

DEFAULT_DIRECTORY_PATH = ".local/directory.yaml"
SECTIONS = ("clients", "agents", "resource_assignments")
COLUMN_HINTS = {
    "clients": {"billing_anchor_day": {"data_type": "bigint"}},
    "agents": {"agent_id": {"data_type": "text"}, "client_id": {"data_type": "text"}},
    "resource_assignments": {
        "agent_id": {"data_type": "text", "nullable": True},
        "valid_from": {"data_type": "timestamp"},
        "valid_to": {"data_type": "timestamp", "nullable": True},
    },
}
