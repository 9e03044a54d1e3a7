"""Prompt text and token counting shared by the engines.

Chat prompts: a model folder whose tokenizer has a Jinja ``chat_template`` gets it, rendered the
way ``transformers``' ``apply_chat_template`` renders it (``ChatTemplate``); without one, the
messages are joined as ``"<role>: <content>\\n"`` lines followed by ``"assistant: "`` (the
documented fallback, docs/runtime.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import zlib
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


# A prompt longer than this many characters is tokenized in a thread, with the GIL released:
# the ``tokenizers`` package holds it through ``encode``, and a 3 MB prompt takes seconds.
INLINE_TOKENIZE_CHARS = 16384
# Slack on the measured size of what a chat template adds (``PromptCounter.fits_by_size``).
OVERHEAD_SLACK = 256
OVERHEAD_SLACK_PER_MESSAGE = 32


class WordTokenizer:
    """Whitespace 'tokenizer' used when no --model-path is given."""

    def count(self, text: str, special: bool = False) -> int:
        return len(text.split())

    async def count_async(self, text: str, special: bool = False) -> int:
        return self.count(text)

    def ids(self, text: str, special: bool = False) -> list[int]:
        """One id per word: its CRC-32 (the same in every process, unlike ``hash(str)``)."""
        return [zlib.crc32(word.encode()) for word in text.split()]

    async def ids_async(self, text: str, special: bool = False) -> list[int]:
        return self.ids(text, special)

    def ids_many(self, texts: list[str]) -> list[list[int]]:
        return [self.ids(t) for t in texts]

    def at_least(self, text: str) -> int:
        return 0

    def at_most(self, text: str, special: bool = False) -> int | None:
        return None

    def at_most_bytes(self, size: int, special: bool = False) -> int | None:
        return None

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
        self._max_token_bytes = _max_token_bytes(path)
        # Tokens the post-processor adds to one sequence (a BOS...), for ``at_most``.
        self._added = len(self._tok.encode("", add_special_tokens=True).ids)

    def count(self, text: str, special: bool = False) -> int:
        """Tokens of ``text``; ``special``: with the special tokens the tokenizer adds (BOS...)."""
        return len(self._tok.encode(text, add_special_tokens=special).ids)

    async def count_async(self, text: str, special: bool = False) -> int:
        """``count``, in a thread that releases the GIL when the text is long, so that the
        event loop (every other request) is not stopped while a huge prompt is tokenized."""
        if len(text) <= INLINE_TOKENIZE_CHARS:
            return self.count(text, special)
        encode = self._tok.encode_batch_fast  # releases the GIL, unlike encode
        encodings = await asyncio.to_thread(encode, [text], add_special_tokens=special)
        return len(encodings[0].ids)

    def ids(self, text: str, special: bool = False) -> list[int]:
        """The token ids of ``text`` (``special``: as in ``count``)."""
        return list(self._tok.encode(text, add_special_tokens=special).ids)

    def ids_many(self, texts: list[str]) -> list[list[int]]:
        """The ids of each text, without special tokens, in one call that releases the GIL."""
        return [list(e.ids) for e in self._tok.encode_batch_fast(texts, add_special_tokens=False)]

    async def ids_async(self, text: str, special: bool = False) -> list[int]:
        """``ids``, in a thread for long texts (as ``count_async``)."""
        if len(text) <= INLINE_TOKENIZE_CHARS:
            return self.ids(text, special)
        encode = self._tok.encode_batch_fast
        encodings = await asyncio.to_thread(encode, [text], add_special_tokens=special)
        return list(encodings[0].ids)

    def at_least(self, text: str) -> int:
        """A lower bound of ``count(text)`` that costs no tokenization (0 when unknown).

        For a byte-level BPE tokenizer without a normalizer every byte of the text is in
        exactly one token, and no token is longer than the longest vocabulary entry; so a text
        of B bytes is at least B / (longest entry) tokens.  A huge prompt is refused on that
        alone."""
        if not self._max_token_bytes:
            return 0
        return -(-len(text.encode()) // self._max_token_bytes)

    def at_most(self, text: str, special: bool = False) -> int | None:
        """An upper bound of ``count(text, special)`` that costs no tokenization (None when
        unknown): for the same byte-level tokenizers every token covers at least one byte of the
        text, so a text of B bytes is at most B tokens, plus what the post-processor adds."""
        return self.at_most_bytes(len(text.encode()), special)

    def at_most_bytes(self, size: int, special: bool = False) -> int | None:
        """``at_most`` of a text of ``size`` bytes."""
        if not self._max_token_bytes:
            return None
        return size + (self._added if special else 0)

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


def _max_token_bytes(path: Path) -> int | None:
    """The byte length of the longest vocabulary entry of a byte-level BPE tokenizer without a
    normalizer, else None (a normalizer or another pre-tokenizer may shrink or drop text, so
    bytes say nothing about tokens).  Byte-level entries spell each byte as one character; its
    UTF-8 length (1 or 2) only makes the bound weaker, never wrong."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pre = spec.get("pre_tokenizer") or {}
    kinds = {pre.get("type")} | {p.get("type") for p in pre.get("pretokenizers") or ()}
    model = spec.get("model") or {}
    if spec.get("normalizer") is not None or "ByteLevel" not in kinds or model.get("type") != "BPE":
        return None
    entries = list(model.get("vocab") or {}) + [
        t.get("content", "") for t in spec.get("added_tokens") or ()
    ]
    return max((len(e.encode()) for e in entries), default=0) or None


def load_tokenizer(model_path: str | None) -> WordTokenizer | HFTokenizer:
    if not model_path:
        return WordTokenizer()
    return HFTokenizer(Path(model_path))


class PromptCounter:
    """How many tokens a chat or completions prompt is, as the model counts them.

    Chat: the model's chat template (``chat_prompt``), tokenized without adding special tokens
    (the template writes them).  Completions: the prompt text with the tokenizer's special
    tokens (a BOS, for most models), as the transformers engine feeds it.  The mocker and the
    frontend count with this one class, so both count alike (docs/runtime.md, "Abuse and
    overload").
    """

    def __init__(self, model_path: str | None) -> None:
        self.tokenizer = load_tokenizer(model_path)
        self.template = ChatTemplate.load(model_path)
        self._overhead = self._template_overhead()

    def prompt(self, op: str, body: dict[str, Any]) -> str:
        if op == "chat":
            return chat_prompt(body["messages"], self.template)
        return completion_prompt(body["prompt"])

    def _template_overhead(self) -> tuple[int, int] | None:
        """What the chat template adds around messages, in bytes: (fixed, per message), from
        renderings of empty conversations of one and three messages, with some slack."""
        user = {"role": "user", "content": ""}
        try:
            one = len(chat_prompt([user], self.template).encode())
            three = chat_prompt([user, {"role": "assistant", "content": ""}, user], self.template)
        except EngineError:
            return None  # a template that refuses empty messages: always render
        per_message = max(0, len(three.encode()) - one) // 2 + OVERHEAD_SLACK_PER_MESSAGE
        return one + OVERHEAD_SLACK, per_message

    def fits_by_size(self, op: str, body: dict[str, Any], body_bytes: int, context: int) -> bool:
        """Whether the request fits ``context`` judging by the size of its JSON body alone,
        before the prompt is rendered: the body holds every byte of the prompt's text (JSON
        escapes are never shorter than what they stand for), the chat template adds about
        ``_template_overhead``, and a byte-level tokenizer makes at most one token per byte.
        The template part is an estimate (a template that prints tool definitions indented adds
        more); when it falls short, the worker, which always counts, refuses the request with
        the same 400."""
        extra = 0
        if op == "chat":
            if self._overhead is None:
                return False
            fixed, per_message = self._overhead
            extra = fixed + per_message * len(body["messages"])
        upper = self.tokenizer.at_most_bytes(body_bytes + extra, special=op == "completions")
        return upper is not None and upper + (requested_max_tokens(body) or 1) <= context

    def certainly_fits(self, op: str, prompt: str, body: dict[str, Any], context: int) -> bool:
        """Whether ``prompt`` with the request's ``max_tokens`` fits ``context`` by the bound of
        ``at_most`` alone (then nobody needs the exact count to enforce the context)."""
        upper = self.tokenizer.at_most(prompt, special=op == "completions")
        return upper is not None and upper + (requested_max_tokens(body) or 1) <= context

    async def count(self, op: str, body: dict[str, Any], context: int | None) -> int:
        """Prompt tokens; a prompt that is certainly longer than ``context`` (see
        ``HFTokenizer.at_least``) is refused without being tokenized."""
        return await self.count_prompt(op, self.prompt(op, body), body, context)

    async def count_prompt(
        self, op: str, prompt: str, body: dict[str, Any], context: int | None
    ) -> int:
        """``count`` of an already rendered ``prompt``."""
        if context is not None and len(prompt) > INLINE_TOKENIZE_CHARS:
            lower = self.tokenizer.at_least(prompt)
            if lower >= context:
                raise context_exceeded(op, context, lower, requested_max_tokens(body), True)
        return await self.tokenizer.count_async(prompt, special=op == "completions")

    async def ids(self, op: str, body: dict[str, Any], context: int | None) -> list[int]:
        """The prompt's token ids (``count`` is their number), with the same early refusal."""
        prompt = self.prompt(op, body)
        if context is not None and len(prompt) > INLINE_TOKENIZE_CHARS:
            lower = self.tokenizer.at_least(prompt)
            if lower >= context:
                raise context_exceeded(op, context, lower, requested_max_tokens(body), True)
        return await self.tokenizer.ids_async(prompt, special=op == "completions")


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    """``max_completion_tokens``, else ``max_tokens``, else None (the request set neither)."""
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if value is not None else None


def context_exceeded(
    op: str, context: int, prompt_tokens: int, completion: int | None, at_least: bool = False
) -> EngineError:
    """OpenAI's 400 for a request that does not fit the context (code
    ``context_length_exceeded``); a request without ``max_tokens`` needs room for one token."""
    wanted = completion if completion is not None else 1
    where = "messages" if op == "chat" else "prompt"
    least = "at least " if at_least else ""
    return EngineError(
        400,
        f"This model's maximum context length is {context} tokens. However, you requested "
        f"{least}{prompt_tokens + wanted} tokens ({least}{prompt_tokens} in the {where}, "
        f"{wanted} in the completion). Please reduce the length of the {where} or completion.",
        "context_length_exceeded",
        where,
    )


def completion_limit(
    op: str, body: dict[str, Any], prompt_tokens: int, context: int | None, default: int
) -> int:
    """The most tokens to generate: ``max_tokens``, or when the request has none the room the
    context leaves (``default`` when the context length is unknown); EngineError(400) when the
    prompt and ``max_tokens`` do not fit.  The one context rule, for the frontend and engines."""
    requested = requested_max_tokens(body)
    if context is None:
        return requested if requested is not None else default
    if prompt_tokens + (requested or 1) > context:
        raise context_exceeded(op, context, prompt_tokens, requested)
    return requested if requested is not None else context - prompt_tokens


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
