"""One output stream for every child: each line prefixed by ``service/replica``.

On a terminal the prefix is coloured per service (rich); elsewhere (pipes, CI, tests) the
output is plain text so that it can be grepped.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

_COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan"]


class LogSink:
    def __init__(self, stream: TextIO | None = None, colour: bool | None = None) -> None:
        self._stream = stream or sys.stdout
        self.colour = self._stream.isatty() if colour is None else colour
        self.console = Console(
            file=self._stream,
            highlight=False,
            soft_wrap=True,
            force_terminal=self.colour,
            no_color=not self.colour,
            # Piped output (CI, a log file) is not cut at 80 columns.
            width=None if self.colour else 160,
        )
        self._styles: dict[str, str] = {}
        self.width = 0

    def register(self, names: list[str]) -> None:
        """Fix the prefix width and a colour per service before the first line."""
        self.width = max((len(n) for n in names), default=0)
        for name in names:
            service = name.split("/", 1)[0]
            self._styles.setdefault(service, _COLOURS[len(self._styles) % len(_COLOURS)])

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{self.width}} | "
        if not self.colour:
            self._stream.write(prefix + text + "\n")
            self._stream.flush()
            return
        style = self._styles.get(name.split("/", 1)[0], "white")
        self.console.print(Text(prefix, style=style) + Text(text))

    def event(self, text: str, style: str = "bold") -> None:
        """A line from ``up`` itself."""
        if not self.colour:
            self._stream.write(f"up: {text}\n")
            self._stream.flush()
            return
        self.console.print(Text("up: ", style="bold") + Text(text, style=style))
