"""Typed values that know how to render themselves where they land.

A value the renderer injects (the leader address, a node rank, a data-parallel start
rank) ends up in one of two places:

* ``KUBELET``: an exec-form ``command``/``args`` entry.  No shell runs; only the kubelet's
  ``$(VAR)`` substitution happens, so an env reference must be written ``$(VAR)`` and
  arithmetic is impossible.
* ``SHELL``: a script that ``sh -c`` evaluates.  An env reference is written ``${VAR}``
  and arithmetic ``$((...))``.

Engines build flags out of these values and never format strings themselves, so the
class of bug where ``$LWS_LEADER_ADDRESS`` reaches a process verbatim cannot be written:
a value that needs a shell refuses to render in ``KUBELET`` context, and the caller must
wrap the command in ``sh -c``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from drivetrain.errors import DrivetrainError


class Context(Enum):
    KUBELET = "kubelet"
    SHELL = "shell"


class NeedsShellError(DrivetrainError, ValueError):
    """Raised when a shell-only value is rendered where no shell runs."""


# Characters that make a literal unsafe as a bare shell word.
_SHELL_SPECIAL = re.compile(r"[^A-Za-z0-9_@%+=:,./-]")


def shell_quote(text: str) -> str:
    """Quote ``text`` as one POSIX shell word (single quotes, ``'`` as ``'"'"'``)."""
    if text and not _SHELL_SPECIAL.search(text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def kubelet_escape(text: str) -> str:
    """Escape ``text`` so that the kubelet's ``$(VAR)`` expansion gives it back unchanged.

    The kubelet treats only ``$$`` and ``$(`` specially, so only a ``$`` followed by ``$``
    or ``(`` is doubled; every other ``$`` already passes through literally.
    """
    out = []
    for i, ch in enumerate(text):
        out.append(ch)
        if ch == "$" and i + 1 < len(text) and text[i + 1] in "$(":
            out.append("$")
    return "".join(out)


# --------------------------------------------------------------------------- integers


class IntExpr:
    """An integer known at render time, read from an env var, or computed from both."""

    def arith(self) -> str:
        """The expression as shell arithmetic text (inside ``$((...))``)."""
        raise NotImplementedError

    @property
    def needs_shell(self) -> bool:
        raise NotImplementedError

    def render(self, ctx: Context) -> str:
        raise NotImplementedError

    def __add__(self, other: IntExpr | int) -> IntExpr:
        return _simplify(BinOp("+", self, as_int(other)))

    def __mul__(self, other: IntExpr | int) -> IntExpr:
        return _simplify(BinOp("*", self, as_int(other)))

    __radd__ = __add__
    __rmul__ = __mul__


@dataclass(frozen=True)
class IntLit(IntExpr):
    value: int

    def arith(self) -> str:
        return str(self.value)

    @property
    def needs_shell(self) -> bool:
        return False

    def render(self, ctx: Context) -> str:
        return str(self.value)


@dataclass(frozen=True)
class IntVar(IntExpr):
    """An env var that holds an integer (e.g. ``LWS_WORKER_INDEX``)."""

    name: str
    #: True for a variable only a shell can read (one the kubelet does not know).
    shell_only: bool = False

    def arith(self) -> str:
        return self.name

    @property
    def needs_shell(self) -> bool:
        return self.shell_only

    def render(self, ctx: Context) -> str:
        if ctx is Context.KUBELET:
            if self.shell_only:
                raise NeedsShellError(f"${{{self.name}}} needs a shell")
            return f"$({self.name})"
        return f"${{{self.name}}}"


@dataclass(frozen=True)
class BinOp(IntExpr):
    op: str
    left: IntExpr
    right: IntExpr

    def arith(self) -> str:
        def side(e: IntExpr) -> str:
            return f"({e.arith()})" if isinstance(e, BinOp) and e.op != self.op else e.arith()

        return f"{side(self.left)} {self.op} {side(self.right)}"

    @property
    def needs_shell(self) -> bool:
        return True

    def render(self, ctx: Context) -> str:
        if ctx is Context.KUBELET:
            raise NeedsShellError(f"arithmetic {self.arith()!r} needs a shell")
        return f"$(({self.arith()}))"


def as_int(value: IntExpr | int) -> IntExpr:
    return value if isinstance(value, IntExpr) else IntLit(value)


def _simplify(e: BinOp) -> IntExpr:
    left, right = e.left, e.right
    if isinstance(left, IntLit) and isinstance(right, IntLit):
        return IntLit(left.value + right.value if e.op == "+" else left.value * right.value)
    if e.op == "*":
        for a, b in ((left, right), (right, left)):
            if isinstance(a, IntLit) and a.value == 1:
                return b
            if isinstance(a, IntLit) and a.value == 0:
                return IntLit(0)
    if e.op == "+":
        for a, b in ((left, right), (right, left)):
            if isinstance(a, IntLit) and a.value == 0:
                return b
    return e


# --------------------------------------------------------------------------- words


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Env:
    """A reference to an env var of the container (string-valued)."""

    name: str


@dataclass(frozen=True)
class ShellOnly:
    """A raw shell fragment (e.g. a command substitution); renders only in a shell."""

    text: str


Part = Lit | Env | ShellOnly | IntExpr


@dataclass(frozen=True)
class Word:
    """One argv entry built from parts; concatenate with ``+``."""

    parts: tuple[Part, ...]

    @property
    def needs_shell(self) -> bool:
        return any(
            isinstance(p, ShellOnly) or (isinstance(p, IntExpr) and p.needs_shell)
            for p in self.parts
        )

    def render(self, ctx: Context) -> str:
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, Lit):
                out.append(
                    kubelet_escape(p.text) if ctx is Context.KUBELET else shell_quote(p.text)
                )
            elif isinstance(p, Env):
                out.append(f"$({p.name})" if ctx is Context.KUBELET else f"${{{p.name}}}")
            elif isinstance(p, ShellOnly):
                if ctx is Context.KUBELET:
                    raise NeedsShellError(f"shell fragment {p.text!r} needs a shell")
                out.append(p.text)
            else:
                out.append(p.render(ctx))
        if ctx is Context.SHELL and len(out) > 1:
            # Adjacent quoted pieces join into one shell word; drop empty quotes.
            return "".join(o for o in out if o != "''") or "''"
        return "".join(out)

    def __add__(self, other: WordLike) -> Word:
        return Word(self.parts + as_word(other).parts)

    def __radd__(self, other: WordLike) -> Word:
        return Word(as_word(other).parts + self.parts)

    def __str__(self) -> str:  # for logs and error messages
        try:
            return self.render(Context.KUBELET)
        except NeedsShellError:
            return self.render(Context.SHELL)


WordLike = Word | str | Lit | Env | ShellOnly | IntExpr | int


def as_word(value: WordLike) -> Word:
    if isinstance(value, Word):
        return value
    if isinstance(value, str):
        return Word((Lit(value),))
    if isinstance(value, int):
        return Word((IntLit(value),))
    return Word((value,))


def words(*values: WordLike) -> list[Word]:
    return [as_word(v) for v in values]


def any_needs_shell(ws: list[Word]) -> bool:
    return any(w.needs_shell for w in ws)
