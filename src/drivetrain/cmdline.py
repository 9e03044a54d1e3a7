"""The rules of a command line, written once: how a program reads its flags, and how the kubelet
expands ``$(VAR)`` in a container's command, args and env values.

A leaf module (it imports nothing from drivetrain) so that the renderer, ``verify`` and
``drivetrain up`` read an argv the same way and cannot drift apart.

Flags are read as argparse reads them (vLLM, SGLang and TRT-LLM all parse with it): ``--f v`` and
``--f=v`` are the same, the **last** occurrence wins, and a word that looks like another option is
not a value. Several spellings of one flag (``--tensor-parallel-size``, ``-tp``) are one flag.
Not modelled: abbreviations (``--tensor-parallel``), short options glued to their value
(``-tp4``), and ``--`` ending the options: a wrapper's ``--`` (``distenv.sh -- torchrun ...``)
precedes the wrapped program's own flags, which are the ones the callers want.

``$(VAR)`` expansion is kubernetes' ``third_party/forked/golang/expansion/expand.go``: only
``$(NAME)`` and ``$$`` mean anything; ``$NAME`` and ``${NAME}`` pass through (the kubelet is not a
shell); see docs/verify.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# argparse takes `-1` or `-.5` as a value, not as an option (its `_negative_number_matcher`).
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


def _looks_like_option(word: str) -> bool:
    # argparse's `_parse_optional`: "-" alone, a negative number or a word with a space is a value.
    return (
        word.startswith("-")
        and word != "-"
        and " " not in word
        and not _NEGATIVE_NUMBER.match(word)
    )


def _occurrences(argv: Sequence[str], names: Sequence[str]) -> Iterator[tuple[int, str | None]]:
    """``(position, value)`` for every occurrence of one of ``names``; value None when the flag
    has none (it ends the argv, or the next word is another option)."""
    for i, word in enumerate(argv):
        for name in names:
            if word == name:
                nxt = argv[i + 1] if i + 1 < len(argv) else None
                yield i, None if nxt is None or _looks_like_option(nxt) else nxt
            elif word.startswith(name + "="):
                yield i, word[len(name) + 1 :]


def flag_values(argv: Sequence[str], *names: str) -> list[str]:
    """Every value given to the flag spelled any of ``names``, in argv order."""
    return [value for _, value in _occurrences(argv, names) if value is not None]


def flag_value(argv: Sequence[str], *names: str) -> str | None:
    """The value the program reads for the flag spelled any of ``names``: the last one given."""
    values = flag_values(argv, *names)
    return values[-1] if values else None


def int_flag(argv: Sequence[str], *names: str) -> int | str | None:
    """A flag's value as an integer; the raw string when it is not one; None when absent."""
    value = flag_value(argv, *names)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def has_flag(argv: Sequence[str], *names: str) -> bool:
    """Whether the flag spelled any of ``names`` is given (with or without a value)."""
    return any(True for _ in _occurrences(argv, names))


def replace_flag(argv: Sequence[str], flag: str, value: str, *, add: bool = False) -> list[str]:
    """``argv`` with every occurrence of ``flag`` set to ``value``, each in its own form
    (``--f v`` or ``--f=v``); appended as ``flag value`` when absent and ``add`` is true.

    Every occurrence, not the first: the program reads the last one.
    """
    out = list(argv)
    found = False
    # Back to front, so that inserting a missing value does not move the occurrences still due.
    for i, current in reversed(list(_occurrences(out, [flag]))):
        found = True
        if out[i] == flag:
            if current is None:
                out.insert(i + 1, value)
            else:
                out[i + 1] = value
        else:
            out[i] = f"{flag}={value}"
    if not found and add:
        out += [flag, value]
    return out


def is_bare_script(program: str) -> bool:
    """Whether ``program`` (an argv[0]) is a Python script named with no interpreter and no path.

    The runtime (exec form) and the shell look a name without ``/`` up on ``PATH``, not in the
    working directory, and a ``train.py`` is practically never on an image's ``PATH``: the
    container fails with "not found". It needs its interpreter (``python3 train.py``) or a path
    (``./train.py`` with a shebang and the exec bit). Only ``.py``: a ``docker-entrypoint.sh`` on
    ``PATH`` is a common convention.
    """
    return "/" not in program and program.endswith(".py") and len(program) > len(".py")


def expand(text: str, mappings: Sequence[Mapping[str, str]]) -> str:
    """Expand ``$(NAME)`` references in ``text`` in one left-to-right pass, as the kubelet does.

    ``mappings`` are searched in order; the first holding the name wins. An undefined name keeps
    the reference verbatim; values are never re-scanned. ``$$`` is one ``$``; ``$X`` for any
    other ``X`` (``$NAME``, ``${NAME}``, ``$?``) is copied as written.
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:  # a trailing '$' is literal
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":  # '$$' escapes one '$'
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # unterminated: emit '$(' and keep scanning after it
                out.append("$(")
                i += 2
                continue
            out.append(_lookup(text[i + 2 : close], mappings))
            i = close + 1
        else:  # '$X' for any other X: both characters are copied
            out.append(ch)
            out.append(nxt)
            i += 2
    return "".join(out)


def _lookup(name: str, mappings: Sequence[Mapping[str, str]]) -> str:
    for mapping in mappings:
        if name in mapping:
            return mapping[name]
    return f"$({name})"


def expand_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """A container's ``command`` + ``args`` after the kubelet's expansion against its final env."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return [expand(str(word), [env]) for word in words]
