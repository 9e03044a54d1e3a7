"""Request validation: pydantic v2 models of the OpenAI bodies drivetrain serves.

Unknown fields are allowed and forwarded (engines may use them); the fields drivetrain itself
reads are checked, and the first problem becomes a 400 naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivetrain.runtime.frontend.errors import ApiError


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)


class _Generate(_Body):
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1, description="only one choice per request")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Generate:
        if self.stream_options is not None and not self.stream:
            raise ValueError(
                "The 'stream_options' field is only allowed when 'stream' is set to true."
            )
        return self


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(_Generate):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_Generate):
    prompt: str | list[str]


class EmbeddingRequest(_Body):
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"


MODELS: dict[str, type[_Body]] = {
    "chat": ChatRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}


def parse_body(raw: bytes, endpoint: str) -> dict[str, Any]:
    """The JSON body as a dict, checked against the endpoint's model; ApiError(400) if bad."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_request")
    try:
        MODELS[endpoint].model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(
            400,
            f"{where}: {message}" if where else message,
            "invalid_value" if first["type"] != "missing" else "missing_field",
            where or None,
        ) from None
    return body
