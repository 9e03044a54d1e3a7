"""Which engine a command runs, and where in it the engine's own argv begins.

Recognised: Dynamo's launchers (``python[3[.x]] -m <pkg>.vllm|sglang|trtllm``), and the
engines' own entry points (``vllm serve``, ``python -m vllm.entrypoints...``,
``python -m sglang.launch_server``, ``trtllm-serve``).  A shell script is searched segment by
segment; a segment ends at ``|``, ``&`` or ``;`` as in Dynamo's detection.
"""

from __future__ import annotations

import re

from drivetrain.render.engines.base import EngineError

ENGINES = ("vllm", "sglang", "trtllm")

PYTHON = re.compile(r"^(.*/)?python\d*(\.\d+)*$")
SHELLS = re.compile(r"^(.*/)?(sh|bash|dash|ash|zsh)$")

# A python module launch, e.g. "python3 -m dynamo.sglang" or "python -m sglang.launch_server".
_MODULE = re.compile(r"(?:^|[\s/])python[0-9.]*\s+(?:[^|&;\s]+\s+)*?-m\s+([\w.]+)")
# The end of an engine token inside a script: the launcher, then its module name.
_TOKEN = {
    "python": re.compile(
        r"((?:^|(?<=[\s/]))python[0-9.]*\s+(?:[^|&;\s]+\s+)*?-m\s+[\w.]+)(?=\s|$|[|&;])"
    ),
    "vllm-serve": re.compile(r"((?:^|(?<=[\s/]))vllm\s+serve)(?=\s|$|[|&;])"),
    "trtllm-serve": re.compile(r"((?:^|(?<=[\s/]))trtllm-serve)(?=\s|$|[|&;])"),
}


def engine_of_module(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] in ("vllm", "sglang"):
        return parts[0]
    if parts[0] == "tensorrt_llm":
        return "trtllm"
    # Launchers that wrap an engine: dynamo.vllm, dynamo.vllm.worker, mypkg.sglang.
    return next((p for p in parts[1:] if p in ENGINES), None)


def engines_in(text: str) -> list[str]:
    """Engines started anywhere in ``text`` (a joined argv or a script), in order."""
    found: list[str] = []
    for segment in re.split(r"[|&;]", text):
        for m in _MODULE.finditer(segment):
            engine = engine_of_module(m.group(1))
            if engine and engine not in found:
                found.append(engine)
        if re.search(r"(?:^|[\s/])vllm\s+serve(?:\s|$)", segment) and "vllm" not in found:
            found.append("vllm")
        if re.search(r"(?:^|[\s/])trtllm-serve(?:\s|$)", segment) and "trtllm" not in found:
            found.append("trtllm")
    return found


def detect_engine(command: list[str], args: list[str]) -> str | None:
    """The one engine the command runs, None if none; EngineError if several."""
    found = engines_in(" ".join([*command, *args]))
    if len(found) > 1:
        raise EngineError(f"the command starts more than one engine ({', '.join(found)})")
    return found[0] if found else None


def is_shell_form(command: list[str]) -> bool:
    return len(command) >= 2 and bool(SHELLS.match(command[0])) and command[1] == "-c"


def engine_token_end(script: str, engine: str) -> int | None:
    """Index just after the engine token in ``script`` (where flags go), or None."""
    best: int | None = None
    for pattern in _TOKEN.values():
        for m in pattern.finditer(script):
            token = m.group(1)
            if pattern is _TOKEN["python"]:
                module = token.split()[-1]
                if engine_of_module(module) != engine:
                    continue
            elif engine not in token.replace("-serve", "").replace(" serve", ""):
                continue
            if best is None or m.end(1) < best:
                best = m.end(1)
            break
    return best
