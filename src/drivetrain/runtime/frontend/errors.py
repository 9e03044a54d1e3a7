"""OpenAI-shaped error responses: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from drivetrain.errors import DrivetrainError

_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(DrivetrainError):
    """Raised anywhere in a handler; turned into one JSON error response."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers


def frame_error(payload: list[Any]) -> ApiError:
    """A worker's error frame ``[status, message(, code, param)]`` (or our own,
    ``ClientStream.abort``) as the client's error."""
    code = payload[2] if len(payload) > 2 and payload[2] else "worker_error"
    param = payload[3] if len(payload) > 3 else None
    return ApiError(payload[0], payload[1], code, param)


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPES.get(
                    status, "server_error" if status >= 500 else "invalid_request_error"
                ),
                "param": param,
                "code": code,
            }
        }
    )


def error_response(err: ApiError) -> web.Response:
    return web.Response(
        status=err.status,
        body=error_body(err.status, err.message, err.code, err.param),
        content_type="application/json",
        headers=err.headers,
    )
