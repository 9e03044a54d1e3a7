"""Stop strings: text is released only once it cannot be the start of a stop string.

OpenAI semantics: generation ends at the first stop string, which is not part of the output.
Text that might begin a stop string (a suffix of the output that is a prefix of some stop) is
held back until the next tokens decide, so a stream never shows text it must later take back.
"""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add generated text; return what may be emitted.  Sets ``stopped`` on a match."""
        if not self._stops:
            return piece
        held = self._held + piece
        cut = min((i for i in (held.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return held[:cut]
        keep = self._longest_partial(held)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep]

    def flush(self) -> str:
        """At the end of generation (not by a stop): the held text is output after all."""
        held, self._held = self._held, ""
        return held

    def _longest_partial(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
