"""The admin listener: the RL API on its own port, behind a bearer token (docs/rl.md).

It exists only when a token is set (``--admin-token`` / ``DRIVETRAIN_ADMIN_TOKEN``): without one
the port is not opened at all.  Every request must carry ``Authorization: Bearer <token>``,
compared in constant time; anything else is a 401 with an OpenAI-style error body that says no
more than that (not whether a header was there, nor how the token differs).

Routes, per model: ``GET /v1/rl/workers?model=M``, ``POST /v1/rl/pause``, ``POST
/v1/rl/resume`` and ``POST /v1/rl/update_weights`` (the fleet transaction, ``fleet.py``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivetrain.runtime.frontend.errors import ApiError, error_response, errors_as_openai
from drivetrain.runtime.frontend.fleet import DEFAULT_UPDATE_TIMEOUT_S, Fleet, UpdatePlan

UNAUTHORIZED = "missing or invalid admin token"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PauseBody(_Body):
    model: str = Field(min_length=1)
    mode: Literal["keep", "wait", "abort"] = "keep"
    timeout: float = Field(default=30.0, gt=0, le=3600)


class ResumeBody(_Body):
    model: str = Field(min_length=1)


class NcclSource(BaseModel):
    """Specified for a trainer that broadcasts over NCCL (docs/rl.md); engines answer 501."""

    model_config = ConfigDict(extra="allow")
    master_address: str | None = None
    master_port: int | None = None
    group_name: str | None = None
    world_size: int | None = None


class SourceBody(_Body):
    path: str | None = Field(default=None, min_length=1)
    nccl: NcclSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceBody:
        if (self.path is None) == (self.nccl is None):
            raise ValueError("expected exactly one of path or nccl")
        return self


class UpdateBody(_Body):
    model: str = Field(min_length=1)
    version: str = Field(min_length=1, max_length=256)
    source: SourceBody
    mode: Literal["keep", "wait", "abort"] = "keep"
    timeout: float = Field(default=DEFAULT_UPDATE_TIMEOUT_S, gt=0, le=3600)


def _parse(model: type[_Body], raw: bytes) -> Any:
    try:
        data = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise ApiError(400, "body: expected a JSON object", "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body: expected a JSON object", "invalid_request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", "invalid_request", where) from None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _auth_middleware(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def authorize(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return error_response(
                ApiError(
                    401, UNAUTHORIZED, "invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
                )
            )
        return await handler(request)

    return authorize


class Admin:
    def __init__(self, fleet: Fleet, token: str) -> None:
        if not token:
            raise ValueError("the admin listener needs a token")
        self.fleet = fleet
        self.token = token

    def make_app(self) -> web.Application:
        # Outermost first: every error, the 401 included, leaves as an OpenAI error body.
        app = web.Application(middlewares=[errors_as_openai, _auth_middleware(self.token)])
        app.router.add_get("/v1/rl/workers", self.workers)
        app.router.add_post("/v1/rl/pause", self.pause)
        app.router.add_post("/v1/rl/resume", self.resume)
        app.router.add_post("/v1/rl/update_weights", self.update_weights)
        return app

    async def workers(self, request: web.Request) -> web.Response:
        model = request.query.get("model")
        if not model:
            names = sorted(self.fleet.table.models)
            return _json({"models": [await self.fleet.workers(name) for name in names]})
        return _json(await self.fleet.workers(model))

    async def pause(self, request: web.Request) -> web.Response:
        body: PauseBody = _parse(PauseBody, await request.read())
        return _json(await self.fleet.pause(body.model, body.mode, body.timeout))

    async def resume(self, request: web.Request) -> web.Response:
        body: ResumeBody = _parse(ResumeBody, await request.read())
        return _json(await self.fleet.resume(body.model))

    async def update_weights(self, request: web.Request) -> web.Response:
        body: UpdateBody = _parse(UpdateBody, await request.read())
        source = body.source.model_dump(exclude_none=True)
        plan = UpdatePlan(body.model, body.version, source, body.mode, body.timeout)
        status, answer = await self.fleet.update(plan)
        return _json(answer, status)
