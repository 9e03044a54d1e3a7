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
    engine_token_end,
    is_exec_program,
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
        scripts = command[2:3] or args[:1]
        return scripts[0] if scripts else ""
    return quote_argv([*command, *args])


def _inject_into_script(script: str, words: list[Word], engine: str) -> str | None:
    pos = engine_token_end(script, engine)
    if pos is None:
        return None
    return f"{script[:pos]} {render_shell(words)}{script[pos:]}"


def _inject_into_scripts(scripts: list[str], words: list[Word], engine: str) -> bool:
    """Flags into the first script that starts ``engine`` (in place); False if none does."""
    for i, script in enumerate(scripts):
        injected = _inject_into_script(script, words, engine)
        if injected is not None:
            scripts[i] = injected
            return True
    return False


def _exec_form(argv: list[str], words: list[Word]) -> tuple[list[str], bool]:
    """(new argv tail or whole script, wrapped): flags for an argv that no shell reads."""
    if any(w.needs_shell for w in words):
        return ["sh", "-c", f"exec {quote_argv(argv)} {render_shell(words)}"], True
    return [w.render(Context.KUBELET) for w in words], False


def inject_flags(container: dict[str, Any], words: list[Word], engine: str) -> dict[str, Any]:
    """The container with ``words`` given to the engine it starts (a new dict).

    * ``command`` is a shell (``sh -c SCRIPT``): flags go right after the engine token of the
      first script that starts it, rendered for the shell.
    * ``command[0]`` is a Python interpreter, ``vllm`` or ``trtllm-serve``: flags are appended
      to ``args`` for the kubelet (``$(VAR)``); if one needs a shell, the argv becomes
      ``sh -c "exec <argv> <flags>"``.
    * no ``command`` and ``args[0]`` is such a program: the same, but a needed shell goes
      into ``args`` (``[sh, -c, exec ...]``) so the image's entrypoint still runs first.
    * anything else: an arg that is a script starting the engine gets the flags as in the
      shell case (Dynamo's images run ``args`` under ``sh -c``); otherwise nothing changes,
      as Dynamo leaves a launcher it cannot see into alone.
    """
    out = copy.deepcopy(container)
    if not words:
        return out
    command = list(out.get("command") or [])
    args = list(out.get("args") or [])
    if is_shell_form(command):
        if len(command) > 2:
            # The script sits in `command` itself; `args` are its positional parameters.
            head = command[2:3]
            if _inject_into_scripts(head, words, engine):
                out["command"] = [*command[:2], *head, *command[3:]]
        elif _inject_into_scripts(args, words, engine):
            out["args"] = args
        return out
    if command and is_exec_program(command[0]):
        tail, wrapped = _exec_form([*command, *args], words)
        if wrapped:
            out["command"], out["args"] = tail[:2], tail[2:]
        else:
            out["args"] = args + tail
        return out
    if not command and args and is_exec_program(args[0]):
        tail, wrapped = _exec_form(args, words)
        out["args"] = tail if wrapped else args + tail
        return out
    if _inject_into_scripts(args, words, engine):
        out["args"] = args
    return out


def arg_tokens(container: dict[str, Any]) -> list[str]:
    """The container's argv split on whitespace (flags may sit inside a script)."""
    tokens: list[str] = []
    for part in [*(container.get("command") or []), *(container.get("args") or [])]:
        tokens += part.split()
    return tokens


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


def set_env(container: dict[str, Any], *entries: dict[str, Any]) -> None:
    """Each entry replaces the container's entry of that name where it stands (a ``$(VAR)``
    that referred to it still does), else is appended; in place."""
    env = list(container.get("env") or [])
    for entry in entries:
        at = next((i for i, e in enumerate(env) if e.get("name") == entry["name"]), None)
        if at is None:
            env.append(entry)
        else:
            env[at] = entry
    container["env"] = env
