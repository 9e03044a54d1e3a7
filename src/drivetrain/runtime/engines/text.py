"""Prompt text and token counting shared by the engines.

Chat prompts: a model folder whose tokenizer has a Jinja ``chat_template`` gets it, rendered the
way ``transformers``' ``apply_chat_template`` renders it (``ChatTemplate``); without one, the
messages are joined as ``"<role>: <content>\\n"`` lines followed by ``"assistant: "`` (the
documented fallback, docs/runtime.md).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from drivetrain.runtime.engines.base import EngineError


def message_text(content: Any) -> str:
    """OpenAI content is a string or a list of parts; keep the text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def chat_prompt(messages: list[dict[str, Any]], template: ChatTemplate | None = None) -> str:
    """The prompt for chat ``messages``: the model's template when it has one, else the join."""
    if template is not None:
        return template.render(messages)
    lines = [f"{m.get('role', 'user')}: {message_text(m.get('content'))}\n" for m in messages]
    lines.append("assistant: ")
    return "".join(lines)


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: ``content`` a string (text parts joined).

    OpenAI clients may send content as a list of parts; most templates print ``content`` as is,
    so a list would appear as its Python repr in the prompt.
    """
    return [
        {**m, "content": message_text(m.get("content"))}
        if not isinstance(m.get("content"), str)
        else m
        for m in messages
    ]


class ChatTemplate:
    """A tokenizer's Jinja chat template, rendered as ``transformers.apply_chat_template`` does.

    Same sandbox and options (``ImmutableSandboxedEnvironment``, ``trim_blocks``,
    ``lstrip_blocks``, loop controls), the same globals (``raise_exception``, ``strftime_now``)
    and the same ``tojson`` (no HTML escaping), so a prompt built here is the prompt the model's
    own library builds; tests/runtime/test_chat_template.py compares the two.  Engines that have
    ``transformers`` loaded use its ``apply_chat_template`` directly; this one serves the engines
    that only have the tokenizer (the mocker).
    """

    def __init__(self, source: str, special_tokens: dict[str, str] | None = None) -> None:
        self.source = source
        self.special_tokens = dict(special_tokens or {})
        self._template = _jinja_environment().from_string(source)

    @classmethod
    def load(cls, model_path: str | Path | None) -> ChatTemplate | None:
        """The template of a model folder (``chat_template.jinja``, else ``tokenizer_config.json``
        ``chat_template``), or None when it has none."""
        if not model_path:
            return None
        folder = Path(model_path)
        config = _tokenizer_config(folder)
        jinja_file = folder / "chat_template.jinja"
        if jinja_file.is_file():
            source: Any = jinja_file.read_text()
        else:
            source = config.get("chat_template")
        if isinstance(source, list):  # named templates: [{"name": "default", "template": ...}]
            named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
            source = named.get("default")
        if not isinstance(source, str) or not source.strip():
            return None
        return cls(source, _special_tokens(config))

    def render(self, messages: list[dict[str, Any]]) -> str:
        from jinja2 import TemplateError

        try:
            return self._template.render(
                messages=template_messages(messages),
                tools=None,
                documents=None,
                add_generation_prompt=True,
                **self.special_tokens,
            )
        except TemplateError as exc:
            raise EngineError(
                400, f"messages: the model's chat template refused them: {exc}"
            ) from None


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _special_tokens(config: dict[str, Any]) -> dict[str, str]:
    """``bos_token``, ``eos_token``... as strings (a tokenizer config may store them as objects)."""
    tokens: dict[str, str] = {}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token"):
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[name] = value
    return tokens


@functools.cache
def _jinja_environment() -> Any:
    """The environment ``transformers`` compiles chat templates in (see ChatTemplate)."""
    import datetime

    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(Extension):
        """``{% generation %}...{% endgeneration %}`` marks assistant text for training masks;
        rendering a prompt only needs the text inside."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(
                lineno
            )

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return message_text(messages[-1].get("content")) if messages else ""


def completion_prompt(prompt: Any) -> str:
    """``prompt`` may be a string or a list of strings (joined) or token ids (rejected)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "".join(prompt)
    raise EngineError(400, "prompt: expected a string or a list of strings")


class WordTokenizer:
    """Whitespace 'tokenizer' used when no --model-path is given."""

    def count(self, text: str) -> int:
        return len(text.split())

    def sample_pieces(self, n: int) -> list[str]:
        words = [
            "the",
            "of",
            "and",
            "to",
            "in",
            "is",
            "was",
            "for",
            "on",
            "that",
            "with",
            "as",
            "by",
            "at",
            "from",
            "it",
            "an",
            "be",
            "this",
            "are",
        ]
        return [f" {w}" for w in words][:n] or [" token"]


class HFTokenizer:
    """The model folder's tokenizer.json via the ``tokenizers`` package."""

    def __init__(self, model_path: Path) -> None:
        from tokenizers import Tokenizer

        path = model_path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json in the model folder")
        self._tok = Tokenizer.from_file(str(path))

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def sample_pieces(self, n: int) -> list[str]:
        """Decoded text of ``n`` ordinary vocabulary tokens (the mocker's output alphabet)."""
        pieces: list[str] = []
        size = self._tok.get_vocab_size()
        start = min(1000, size // 2)  # past the single bytes and characters
        step = max(1, (size - start) // (n * 4))
        for token_id in range(start, size, step):
            text = self._tok.decode([token_id])
            if text.strip() and text.isprintable() and "\ufffd" not in text and len(text) < 12:
                pieces.append(text)
            if len(pieces) >= n:
                break
        return pieces or [" token"]


def load_tokenizer(model_path: str | None) -> WordTokenizer | HFTokenizer:
    if not model_path:
        return WordTokenizer()
    return HFTokenizer(Path(model_path))


def context_length(model_path: str | None) -> int | None:
    """``max_position_embeddings`` from config.json, when there is one."""
    if not model_path:
        return None
    path = Path(model_path) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings")
    return value if isinstance(value, int) else None


def max_tokens(body: dict[str, Any], default: int) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if value is not None else default


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise EngineError(400, "input: expected a string or a list of strings")


def hash_vector(text: str, dims: int = 16) -> list[float]:
    """A deterministic unit-free vector for a text (test engines have no real embeddings)."""
    import hashlib

    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0 * 2 - 1, 6) for b in digest[:dims]]
