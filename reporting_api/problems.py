"""Errors as RFC 9457 problem details (application/problem+json), naming the parameter at fault."""

from __future__ import annotations

import orjson
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPES = {
    400: "invalid-parameter",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    500: "internal-error",
    503: "unavailable",
}
TITLES = {
    400: "Invalid parameter",
    401: "Missing, invalid or revoked token",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    500: "Internal error",
    503: "Warehouse unavailable",
}


class Problem(Exception):
    """An error response; `parameter` names the query or path parameter at fault."""

    def __init__(self, status: int, detail: str, parameter: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.parameter, self.headers = status, detail, parameter, headers or {}

    def body(self) -> dict:
        body = {"type": f"urn:billing-usage:problem:{PROBLEM_TYPES.get(self.status, 'error')}",
                "title": TITLES.get(self.status, "Error"), "status": self.status, "detail": self.detail}
        if self.parameter:
            body["parameter"] = self.parameter
            body["invalid_params"] = [{"name": self.parameter, "reason": self.detail}]
        return body

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), status_code=self.status, media_type=PROBLEM_MEDIA_TYPE,
                        headers=self.headers)


def invalid(parameter: str, detail: str) -> Problem:
    return Problem(400, f"{parameter}: {detail}", parameter)


def not_found(what: str) -> Problem:
    return Problem(404, f"no such {what}")


UNAUTHORIZED = Problem(401, "a valid bearer token is required (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": 'Bearer realm="billing-usage"'})
