"""Request validation: pydantic v2 models of the OpenAI bodies drivetrain serves.

Types are strict, as in OpenAI's API: an integer field takes only a JSON integer (``"12"``,
``12.0`` and ``true`` are refused), a boolean only ``true``/``false``, a string only a string;
a number field takes integers and decimals.  Every OpenAI field of the three routes is typed
(drivetrain reads some, the engines others), so a bad type is a 400 naming the field whichever
engine serves the model.  Unknown fields are allowed and forwarded (engines may use them); the
first problem becomes a 400 whose ``param`` is the field path and whose message starts with it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivetrain.runtime.frontend.errors import ApiError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Body(_Strict):
    model: str = Field(min_length=1)
    user: str | None = None


class StreamOptions(_Strict):
    include_usage: bool | None = None


class _Generate(_Body):
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1, description="only one choice per request")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    logit_bias: dict[str, float] | None = None

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Generate:
        if self.stream_options is not None and not self.stream:
            raise ValueError(
                "The 'stream_options' field is only allowed when 'stream' is set to true."
            )
        return self


class Message(_Strict):
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ChatRequest(_Generate):
    messages: list[Message] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    parallel_tool_calls: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(_Generate):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = Field(default=None, ge=1)
    suffix: str | None = None


class EmbeddingRequest(_Body):
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


class Sampling(_Strict):
    """``/v1/generate``'s sampling block (the fields vLLM's ``SamplingParams`` names)."""

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = None
    seed: int | None = None
    logprobs: int | None = Field(default=None, ge=0, le=20)
    stop_token_ids: list[int] | None = None
    ignore_eos: bool | None = None


class GenerateRequest(_Body):
    """Token-in/token-out (docs/rl.md): no chat template, no detokenisation."""

    token_ids: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    sampling: Sampling | None = None
    stream: bool | None = False


MODELS: dict[str, type[_Body]] = {
    "chat": ChatRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
    "generate": GenerateRequest,
}

# Names of the declared fields: in an error's location, any other string is the name pydantic
# gives a member of a union (``str``, ``list[str]``...), not part of the field path.
_FIELDS = frozenset(
    name
    for model in (*MODELS.values(), Message, StreamOptions, Sampling)
    for name in model.model_fields  # type: ignore[attr-defined]
)

# The JSON type each pydantic type error stands for, and the JSON type of a value.
_EXPECTED = {
    "int_type": "an integer",
    "bool_type": "a boolean",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
_PLURAL = {
    "int_type": "integers",
    "bool_type": "booleans",
    "float_type": "numbers",
    "string_type": "strings",
    "list_type": "arrays",
    "dict_type": "objects",
    "model_type": "objects",
    "model_attributes_type": "objects",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if isinstance(p, int) or p in _FIELDS)


def _problem(errors: list[Any]) -> tuple[str, str, str]:
    """(field path, message, code) of the first problem.  When every error under that field is
    a type error (each member of a union failed), they are said together: ``stop: expected a
    string or an array of strings, got an integer``."""
    first = errors[0]
    where = _field_path(first["loc"])
    kinds: list[str] = []
    for error in errors:
        path = _field_path(error["loc"])
        if path != where and not path.startswith(where + "."):
            continue
        kind = _EXPECTED.get(error["type"])
        if kind is None:
            kinds = []
            break
        if path != where:  # an element of an array
            kind = "an array of " + _PLURAL[error["type"]]
        if kind not in kinds:
            kinds.append(kind)
    if kinds:
        return (
            where,
            f"expected {' or '.join(kinds)}, got {_json_type(first['input'])}",
            ("invalid_type"),
        )
    message = first["msg"].removeprefix("Value error, ")
    return where, message, "invalid_value" if first["type"] != "missing" else "missing_field"


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
        where, message, code = _problem(exc.errors())
        raise ApiError(
            400, f"{where}: {message}" if where else message, code, where or None
        ) from None
    return body
