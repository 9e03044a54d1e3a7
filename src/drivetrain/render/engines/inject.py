"""Putting engine flags into a container's command, in the form each place needs.

* Exec form (no shell): flags are appended to ``args``, rendered for the kubelet
  (``$(VAR)``).  If any flag needs a shell (arithmetic), the whole argv is wrapped as
  ``sh -c "exec <argv, quoted> <flags>"``.
* Shell form (``sh -c SCRIPT``): flags go right after the engine token in the first script
  that runs the engine, before the user's own flags, pipes and ``&&``; rendered for the
  shell (``${VAR}``, ``$((...))``).
"""

from __future__ import annotations

import copy
from typing import Any

from drivetrain.render.engines.detect import (
    PYTHON,
    engine_token_end,
    engines_in,
    is_shell_form,
)
from drivetrain.render.expr import Context, Word, WordLike, as_word, shell_quote


def flags(*pairs: WordLike) -> list[Word]:
    return [as_word(p) for p in pairs]


def render_shell(words: list[Word]) -> str:
    return " ".join(w.render(Context.SHELL) for w in words)


def quote_argv(argv: list[str]) -> str:
    return " ".join(shell_quote(t) for t in argv)


def original_script(container: dict[str, Any]) -> str:
    """The container's command as one shell command line (for wrapping in a script)."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if is_shell_form(command):
        return " && ".join(args[:1]) if args else ""
    return quote_argv([*command, *args])


def inject_flags(container: dict[str, Any], words: list[Word], engine: str) -> dict[str, Any]:
    out = copy.deepcopy(container)
    command = list(out.get("command") or [])
    args = list(out.get("args") or [])
    if not words:
        return out
    if is_shell_form(command):
        for i, script in enumerate(args):
            pos = engine_token_end(script, engine)
            if pos is not None:
                args[i] = f"{script[:pos]} {render_shell(words)}{script[pos:]}"
                out["args"] = args
                break
        return out
    argv = [*command, *args]
    runs_engine = engine in engines_in(" ".join(argv))
    if not argv or not (runs_engine or (command and PYTHON.match(command[0]))):
        # Dynamo does the same: a launcher it cannot see into is left alone.
        return out
    if any(w.needs_shell for w in words):
        out["command"] = ["sh", "-c"]
        out["args"] = [f"exec {quote_argv(argv)} {render_shell(words)}"]
    else:
        out["args"] = args + [w.render(Context.KUBELET) for w in words]
    return out


def arg_tokens(container: dict[str, Any]) -> list[str]:
    """The container's argv split on whitespace (flags may sit inside a script)."""
    tokens: list[str] = []
    for part in [*(container.get("command") or []), *(container.get("args") or [])]:
        tokens += part.split()
    return tokens


def flag_value(tokens: list[str], *names: str, default: int = 1) -> int:
    for i, tok in enumerate(tokens):
        for name in names:
            if tok == name and i + 1 < len(tokens):
                try:
                    return int(tokens[i + 1])
                except ValueError:
                    return default
            if tok.startswith(name + "="):
                try:
                    return int(tok.split("=", 1)[1])
                except ValueError:
                    return default
    return default


def has_flag(tokens: list[str], name: str) -> bool:
    return any(t == name or t.startswith(name + "=") for t in tokens)


def remove_probes(container: dict[str, Any], *kinds: str) -> dict[str, Any]:
    out = dict(container)
    for kind in kinds:
        out.pop(kind, None)
    return out


def append_env(container: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    out = dict(container)
    env = [e for e in out.get("env", []) if e["name"] not in {x["name"] for x in entries}]
    out["env"] = env + list(entries)
    return out
