"""``up --env-file FILE``: the values a cluster would give from Secrets and ConfigMaps.

The format (dotenv-style, deliberately small; docs/local.md):

* one ``NAME=VALUE`` per line; an optional ``export `` before the name is ignored;
* blank lines and lines whose first non-blank character is ``#`` are skipped;
* ``NAME`` is an environment variable name as Kubernetes accepts it (letters, digits, ``_``,
  ``-``, ``.``; not starting with a digit);
* ``VALUE`` is everything after the first ``=``, surrounding white space removed; one pair of
  matching single or double quotes around it is removed, and nothing else is interpreted (no
  escapes, no ``$VAR`` or ``$(VAR)``, no line continuation);
* a name given twice keeps its last value.
"""

from __future__ import annotations

import re
from pathlib import Path

from drivetrain.api.errors import FieldError, InvalidGraph

_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def parse_env_file(text: str, file: str) -> dict[str, str]:
    """The variables of an env file; ``InvalidGraph`` naming every bad line."""
    values: dict[str, str] = {}
    errors: list[FieldError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            errors.append(
                FieldError(
                    "",
                    f"expected NAME=VALUE with NAME a variable name, got {raw.strip()!r}",
                    file=file,
                    line=number,
                )
            )
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    if errors:
        raise InvalidGraph(errors)
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """``parse_env_file`` of ``path``; an unreadable file is an ``InvalidGraph`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidGraph([FieldError("", "env file not found", file=str(path))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidGraph([FieldError("", f"cannot be read: {exc}", file=str(path))]) from None
    return parse_env_file(text, str(path))
