"""When to restart a crashed process, and when to stop trying: pure policy, no clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    #: delay before the first restart; doubles after each fast crash up to ``max_delay``
    initial_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0
    #: a process that ran less than this long before exiting crashed "fast"
    fast_crash_window: float = 10.0
    #: give up after this many fast crashes in a row (a slow crash resets the count)
    max_fast_crashes: int = 5

    def is_fast(self, ran_for: float) -> bool:
        return ran_for < self.fast_crash_window

    def delay(self, fast_crashes: int) -> float | None:
        """Seconds to wait before the next start after ``fast_crashes`` fast crashes in a row
        (0 when the last crash was slow), or None to give up."""
        if fast_crashes >= self.max_fast_crashes:
            return None
        if fast_crashes <= 0:
            return self.initial_delay
        return min(self.max_delay, self.initial_delay * self.factor ** (fast_crashes - 1))
