"""Prompt text and token counting shared by the mocker and echo engines.

Chat template: drivetrain does not ship a Jinja engine, so chat messages are joined as
``"<role>: <content>\\n"`` lines followed by ``"assistant: "``.  This is documented in
docs/runtime.md; usage counts are exact for that text, not for the model's own template.
"""

from __future__ import annotations

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


def chat_prompt(messages: list[dict[str, Any]]) -> str:
    lines = [f"{m.get('role', 'user')}: {message_text(m.get('content'))}\n" for m in messages]
    lines.append("assistant: ")
    return "".join(lines)


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
