"""OpenAI-shaped error responses: ``{"error": {"message", "type", "param", "code"}}``, and the
middleware that turns every error of an app (the OpenAI routes, the admin listener) into one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from drivetrain.errors import DrivetrainError

log = logging.getLogger(__name__)

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


@web.middleware
async def errors_as_openai(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as an OpenAI error body: aiohttp's own 404/405/413 and our bugs too."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(ApiError(exc.status, exc.reason, None))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            ApiError(500, "internal error (see the frontend log)", "internal_error")
        )
