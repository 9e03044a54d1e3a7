"""The mocker's clock: one scheduler per worker steps the whole batch, as Dynamo's mocker does.

A request first spends its own prefill time (overlapping other requests' prefills: the
approximation docs/runtime.md states), then joins the running batch at the next step boundary.
Every decode step lasts ``step_seconds(active KV tokens)`` and gives each request in the batch
one token.  Steps are laid on a timeline of due times rather than slept one after another: each
wake-up runs every step that is due by now (catching up when the event loop woke late, so
simulated time does not stretch with the host's load), hands each request the tokens it earned
in one go, and arms a single timer for the next due step.  The whole worker therefore costs
O(1) wake-ups per batch of due tokens, not one sleep per token per request.  Tokens are handed
over by calling each request's ``deliver`` from the timer callback, so a request's own task
sleeps from its prefill to its end (``Sequence.done``) instead of waking for every batch.

Steps shorter than the event loop's timer resolution (1 ms) are caught up in pairs or more, so
at ``--speedup-ratio 10`` (0.57 ms per step) a wake-up carries one or two tokens per request;
the average inter-token time stays the simulated one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

# The event loop's timer resolution: uvloop keeps time and timers in whole milliseconds (a delay
# of 0.4 ms fires at once).  A step is run when it is due within half of it (rounding to the
# nearest millisecond, so tokens are on time on average), and a timer is never armed closer than
# a whole one (an earlier one would fire, find nothing due and re-arm: a busy loop).  Due times
# stay on the simulated timeline either way, so rounding never accumulates.
TIMER_RESOLUTION_S = 0.001
DUE_SLACK_S = TIMER_RESOLUTION_S / 2


class Sequence:
    """One request in the scheduler: its counters, how its tokens are handed over, and when it
    is done.

    ``deliver(n)`` is called from the scheduler's timer callback with the number of tokens that
    became due for this request since the last call (one call per wake-up, never per token);
    ``done`` resolves once all ``limit`` tokens were delivered, or with the exception a
    ``deliver`` raised.
    """

    __slots__ = ("deliver", "done", "earned", "kv", "limit", "produced", "ready_at", "removed")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        prompt_tokens: int,
        limit: int,
        deliver: Callable[[int], None],
    ) -> None:
        self.deliver = deliver
        self.done: asyncio.Future[None] = loop.create_future()
        self.kv = prompt_tokens  # KV tokens this request holds (prompt + generated)
        self.limit = limit
        self.produced = 0
        self.earned = 0  # produced and not yet delivered
        self.ready_at = 0.0
        self.removed = False

    def _hand_over(self) -> None:
        if self.removed:
            return
        earned, self.earned = self.earned, 0
        try:
            self.deliver(earned)
        except Exception as exc:  # one request's failure must not stop the batch's clock
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if self.produced >= self.limit and not self.done.done():
            self.done.set_result(None)


class StepScheduler:
    """Steps the decode batch of one worker on one timer.

    ``step_seconds(active_kv)`` is the duration of a step that starts with ``active_kv`` KV
    tokens held by the worker's requests (prompts being prefilled included).
    """

    def __init__(self, step_seconds: Callable[[int], float]) -> None:
        self._step_seconds = step_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[int, Sequence] = {}
        self._waiting: list[tuple[float, int, Sequence]] = []  # heap of (ready_at, n, seq)
        self._order = itertools.count()
        self._step_end: float | None = None  # due time of the step in progress
        self._timer: asyncio.Handle | None = None
        self._timer_due: float | None = None
        self.active_kv = 0
        self.wakeups = 0  # timer callbacks so far (the tests count them)
        self.steps = 0

    def add(
        self,
        prompt_tokens: int,
        limit: int,
        prefill_seconds: float,
        deliver: Callable[[int], None],
    ) -> Sequence:
        """A request that will be ready to decode after ``prefill_seconds``; its tokens go to
        ``deliver`` as they become due (``limit`` > 0)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        seq = Sequence(loop, prompt_tokens, limit, deliver)
        seq.ready_at = loop.time() + prefill_seconds
        heapq.heappush(self._waiting, (seq.ready_at, next(self._order), seq))
        self.active_kv += prompt_tokens
        self._arm()
        return seq

    def remove(self, seq: Sequence) -> None:
        """The request finished or was cancelled: its KV tokens are freed."""
        if seq.removed:
            return
        seq.removed = True
        self.active_kv -= seq.kv
        self._running.pop(id(seq), None)  # a waiting one is skipped when it comes up
        if not self._running and not self._waiting:
            self._step_end = None
            self._arm()

    # ---- the clock --------------------------------------------------------------------------

    def _next_ready(self) -> float | None:
        waiting = self._waiting
        while waiting and waiting[0][2].removed:
            heapq.heappop(waiting)
        return waiting[0][0] if waiting else None

    def _admit(self, at: float) -> None:
        """Requests whose prefill is over by ``at`` join the batch."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= at:
            seq = heapq.heappop(waiting)[2]
            if not seq.removed:
                self._running[id(seq)] = seq

    def _due(self) -> float | None:
        if self._running:
            return self._step_end
        start = self._next_ready()
        return None if start is None else start + self._step_seconds(self.active_kv)

    def _arm(self) -> None:
        due = self._due()
        if due == self._timer_due:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_due = due
        loop = self._loop
        if due is not None and loop is not None:
            delay = due - DUE_SLACK_S - loop.time()
            if delay <= 0:
                self._timer = loop.call_soon(self._on_timer)
            else:
                self._timer = loop.call_later(max(delay, TIMER_RESOLUTION_S), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = None
        self.wakeups += 1
        if self._loop is not None:
            self._run_due(self._loop.time() + DUE_SLACK_S)
        self._arm()

    def _run_due(self, now: float) -> None:
        """Run every step due by ``now``, then hand each request what it earned in them."""
        earned: list[Sequence] = []
        self._run_steps(now, earned)
        for seq in earned:  # once per request per wake-up, however many steps ran
            seq._hand_over()

    def _run_steps(self, now: float, earned: list[Sequence]) -> None:
        running = self._running
        while True:
            if not running:
                start = self._next_ready()
                if start is None:
                    self._step_end = None
                    return
                if start + self._step_seconds(self.active_kv) > now:
                    return  # the first step of the next batch is not due yet
                self._admit(start)
                self._step_end = start + self._step_seconds(self.active_kv)
            end = self._step_end
            if end is None or end > now:
                return
            self.steps += 1
            finished = []
            for key, seq in running.items():
                seq.produced += 1
                seq.earned += 1
                seq.kv += 1
                if seq.earned == 1:  # listed once per wake-up: later steps only add to it
                    earned.append(seq)
                if seq.produced >= seq.limit:
                    finished.append(key)
            self.active_kv += len(running)
            for key in finished:
                del running[key]  # its KV stays held until the request is removed
            self._admit(end)
            self._step_end = end + self._step_seconds(self.active_kv) if running else None
