"""The small request/response types the provider imitations share."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str  # below the provider prefix, e.g. "/v3/list-calls"
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An error the provider imitation answers with, in the provider's own body format."""

    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.response = Response(status, body, headers or {})
