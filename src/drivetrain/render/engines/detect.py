"""Which engine a command runs, and where in it the engine's own argv begins.

Recognised: Dynamo's launchers (``python[3[.x]] ... -m <pkg>.vllm|sglang|trtllm[.sub]``, any
``<pkg>``, not only ``dynamo``), and the engines' own entry points (``vllm serve``,
``python -m vllm.entrypoints...``, ``python -m sglang.launch_server``, ``trtllm-serve``).  A
shell script is searched segment by segment; a segment ends at ``|``, ``&`` or ``;`` as in
Dynamo's detection regex.
"""

from __future__ import annotations

import re

from drivetrain.render.engines.base import EngineChoiceError

ENGINES = ("vllm", "sglang", "trtllm")

#: A Python interpreter, bare or by path: python, python3, python3.11, /usr/bin/python3.8.
PYTHON = re.compile(r"^(.*/)?python\d*(\.\d+)*$")
#: The engines' own console scripts that take flags directly (exec form).
ENGINE_PROGRAMS = re.compile(r"^(.*/)?(vllm|trtllm-serve)$")
SHELLS = re.compile(r"^(.*/)?(sh|bash|dash|ash|zsh)$")
#: ``-c`` and combined forms such as ``-lc`` or ``-ec``.
_SHELL_C = re.compile(r"^-[a-z]*c$")

# A python module launch inside one segment, e.g. "python3 -u -m dynamo.sglang".
_MODULE = re.compile(r"(?:^|(?<=[\s/]))python[0-9.]*\s+(?:[^|&;\s]+\s+)*?-m\s+([\w.]+)")
_VLLM_SERVE = re.compile(r"(?:^|(?<=[\s/]))vllm\s+serve(?=\s|$)")
_TRTLLM_SERVE = re.compile(r"(?:^|(?<=[\s/]))trtllm-serve(?=\s|$)")


def engine_of_module(module: str) -> str | None:
    """The engine a ``python -m <module>`` starts, or None.

    ``vllm.*`` and ``sglang.*`` are the engines' own entry points; ``tensorrt_llm.*`` is
    TRT-LLM's.  Any other package with an engine-named submodule (``dynamo.vllm``,
    ``dynamo.trtllm.worker``, ``mypkg.sglang``) is a launcher for that engine.
    """
    parts = module.split(".")
    if parts[0] in ("vllm", "sglang"):
        return parts[0]
    if parts[0] == "tensorrt_llm":
        return "trtllm"
    return next((p for p in parts[1:] if p in ENGINES), None)


def _segments(text: str) -> list[str]:
    return re.split(r"[|&;]", text)


def engines_in(text: str) -> list[str]:
    """Engines started anywhere in ``text`` (a joined argv or a script), in order."""
    found: list[str] = []
    for segment in _segments(text):
        hits: list[tuple[int, str]] = []
        for m in _MODULE.finditer(segment):
            engine = engine_of_module(m.group(1))
            if engine:
                hits.append((m.start(), engine))
        hits += [(m.start(), "vllm") for m in _VLLM_SERVE.finditer(segment)]
        hits += [(m.start(), "trtllm") for m in _TRTLLM_SERVE.finditer(segment)]
        for _, engine in sorted(hits):
            if engine not in found:
                found.append(engine)
    return found


#: ``python -m <module>`` entry points of the engines' own OpenAI-compatible servers.
SERVER_MODULES = {"vllm.entrypoints.openai.api_server": "vllm", "sglang.launch_server": "sglang"}


def engine_server(command: list[str], args: list[str]) -> str | None:
    """The engine whose own OpenAI-compatible server the command starts, or None.

    ``vllm serve``, ``python -m vllm.entrypoints.openai.api_server``, ``python -m
    sglang.launch_server`` and ``trtllm-serve`` (not a launcher such as ``dynamo.vllm``, which
    runs a runtime of its own).
    """
    found: list[str] = []
    for segment in _segments(" ".join([*command, *args])):
        hits = [
            (m.start(), SERVER_MODULES[m.group(1)])
            for m in _MODULE.finditer(segment)
            if m.group(1) in SERVER_MODULES
        ]
        hits += [(m.start(), "vllm") for m in _VLLM_SERVE.finditer(segment)]
        hits += [(m.start(), "trtllm") for m in _TRTLLM_SERVE.finditer(segment)]
        for _, engine in sorted(hits):
            if engine not in found:
                found.append(engine)
    return found[0] if len(found) == 1 else None


def detect_engine(command: list[str], args: list[str]) -> str | None:
    """The one engine the command runs, None if none; EngineChoiceError if several."""
    found = engines_in(" ".join([*command, *args]))
    if len(found) > 1:
        raise EngineChoiceError(
            f"the command starts more than one engine ({', '.join(found)}); "
            "run one engine per service"
        )
    return found[0] if found else None


def resolve_engine(
    command: list[str], args: list[str], *, explicit: str | None, is_worker: bool
) -> str | None:
    """The engine of a service: detected from its command, else the explicit one.

    Only worker-type services (worker, prefill, decode) run an engine.  A detected engine
    that contradicts the explicit ``backendFramework`` is an error, as in Dynamo.
    """
    if not is_worker:
        return None
    detected = detect_engine(command, args)
    if detected and explicit and detected != explicit:
        raise EngineChoiceError(
            f'backend framework mismatch: detected "{detected}" from command but '
            f'explicitly configured as "{explicit}"'
        )
    return detected or explicit


def is_shell_form(command: list[str]) -> bool:
    """``sh -c``, ``/bin/bash -lc`` and the like: the script is the next word."""
    return len(command) >= 2 and bool(SHELLS.match(command[0])) and bool(_SHELL_C.match(command[1]))


def is_exec_program(program: str) -> bool:
    """A program that takes the engine's flags as argv: a Python interpreter or an engine CLI."""
    return bool(PYTHON.match(program) or ENGINE_PROGRAMS.match(program))


def engine_token_end(script: str, engine: str) -> int | None:
    """Index just after the first token in ``script`` that starts ``engine``, or None.

    That is where flags go: after ``python3 -m dynamo.vllm``, ``vllm serve`` or
    ``trtllm-serve``, so they come before the user's own flags, pipes and ``&&``.
    """
    ends: list[int] = []
    for segment_match in re.finditer(r"[^|&;]+", script):
        segment, offset = segment_match.group(0), segment_match.start()
        for m in _MODULE.finditer(segment):
            if engine_of_module(m.group(1)) == engine:
                ends.append(offset + m.end(1))
        if engine == "vllm":
            ends += [offset + m.end() for m in _VLLM_SERVE.finditer(segment)]
        if engine == "trtllm":
            ends += [offset + m.end() for m in _TRTLLM_SERVE.finditer(segment)]
        if ends:
            return min(ends)
    return None
