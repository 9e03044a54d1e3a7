"""The generation thread: a bounded queue, admission into batches, one step for every sequence.

Why a thread: a forward pass holds a CPU core for milliseconds to seconds; run on the event loop
it would stall the request plane and every other stream.  The thread owns the model and every
tensor; the event loop only submits ``Sequence``s and reads their results.

One loop iteration:

1. apply calls queued with ``call_between_steps`` (weight updates), so a forward pass never
   sees half-updated weights;
2. one decode step for every batch (one forward pass per batch, every row one token);
3. admit waiting sequences while fewer than ``max_batch`` are active: they are prefilled
   together (left-padded, one forward pass) and merged into the running batch;
4. hand every row's new text, finish or error back to the event loop in one
   ``call_soon_threadsafe``.

Limits: at most ``max_batch`` sequences decode at once; at most ``max_queue`` wait; a request
arriving when the queue is full fails at once with 503 rather than waiting without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from drivetrain.runtime.engines.base import Chunk, EngineError, Finish
from drivetrain.runtime.engines.hf.batch import Batch, CausalLM
from drivetrain.runtime.engines.hf.detok import IncrementalDetokenizer
from drivetrain.runtime.engines.hf.params import SamplingParams
from drivetrain.runtime.engines.hf.sampling import next_tokens
from drivetrain.runtime.engines.hf.stops import StopMatcher

log = logging.getLogger(__name__)

Item = Chunk | Finish | EngineError


class Stream:
    """The event loop's side of one request: results arrive on ``queue``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        # Set by the event loop when the client went away; the thread drops the row next step.
        self.cancelled = False


@dataclass(eq=False)
class Sequence:
    """One request as the thread sees it."""

    stream: Stream
    prompt: list[int]
    params: SamplingParams
    limit: int  # new tokens at most: max_tokens, and what the context has room for
    generator: torch.Generator
    detok: IncrementalDetokenizer
    stops: StopMatcher = field(init=False)
    generated: int = 0
    unsent: int = 0  # tokens generated since the last chunk (text held back)

    def __post_init__(self) -> None:
        self.stops = StopMatcher(self.params.stop)


class Scheduler:
    def __init__(
        self, lm: CausalLM, eos_ids: set[int], max_batch: int = 16, max_queue: int = 64
    ) -> None:
        self.lm = lm
        self.eos_ids = eos_ids
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.steps = 0  # forward passes run (prefills and decode steps), for tests and stats
        self._cond = threading.Condition()
        self._waiting: deque[Sequence] = deque()
        self._calls: deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = deque()
        self._batches: list[Batch[Sequence]] = []
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="transformers-engine", daemon=True)

    @property
    def active(self) -> int:
        return sum(len(batch.rows) for batch in self._batches)

    def capacity(self) -> int:
        """Sequences that run at once without one waiting: ``max_batch``, or what runs now
        once requests wait for a place (read from the event loop; a stale length is harmless)."""
        return self.active if self._waiting else self.max_batch

    @property
    def largest_batch(self) -> int:
        return max((len(batch.rows) for batch in self._batches), default=0)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (blocking); requests still running or waiting fail with 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def submit(self, sequence: Sequence) -> None:
        with self._cond:
            if self._stopping:
                raise EngineError(503, "the engine is stopping")
            if len(self._waiting) >= self.max_queue:
                raise EngineError(
                    503,
                    f"the engine is busy: {len(self._waiting)} requests already wait "
                    f"(--max-queue {self.max_queue})",
                )
            self._waiting.append(sequence)
            self._cond.notify()

    def call_between_steps(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``fn`` on the generation thread between two steps; its result as a future."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            if self._stopping:
                raise EngineError(503, "the engine is stopping")
            self._calls.append((fn, future))
            self._cond.notify()
        return future

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        reason = "the engine stopped"
        try:
            with torch.inference_mode():
                while True:
                    with self._cond:
                        while not (self._waiting or self._batches or self._calls or self._stopping):
                            self._cond.wait()
                        if self._stopping:
                            break
                        calls = list(self._calls)
                        self._calls.clear()
                        admitted = self._take_waiting(self.max_batch - self.active)
                    self._iterate(calls, admitted)
        except BaseException as exc:  # a bug outside a step: fail loudly, never hang requests
            log.exception("the transformers engine's thread failed")
            reason = f"the engine failed: {type(exc).__name__}: {exc}"
        with self._cond:
            self._stopping = True
            self._fail_all(EngineError(503, reason))

    def _iterate(
        self,
        calls: list[tuple[Callable[[], Any], concurrent.futures.Future[Any]]],
        admitted: list[Sequence],
    ) -> None:
        out: list[tuple[Stream, Item]] = []
        for fn, future in calls:
            _run_call(fn, future)
        for batch in self._batches:
            self.steps += 1
            try:
                self._advance(batch, batch.decode(), out)
            except Exception as exc:
                self._fail(batch.rows, exc, out)
        if admitted:
            try:
                self._admit(admitted, out)
            except Exception as exc:
                self._fail(admitted, exc, out)
        self._batches = [batch for batch in self._batches if batch.rows]
        self._deliver(out)

    def _take_waiting(self, room: int) -> list[Sequence]:
        taken: list[Sequence] = []
        while self._waiting and len(taken) < room:
            sequence = self._waiting.popleft()
            if not sequence.stream.cancelled:
                taken.append(sequence)
        return taken

    def _admit(self, admitted: list[Sequence], out: list[tuple[Stream, Item]]) -> None:
        batch, logits = Batch.prefill(self.lm, admitted, [s.prompt for s in admitted])
        self.steps += 1
        self._advance(batch, logits, out)
        if not batch.rows:
            return
        for running in self._batches:
            if running.can_merge(batch):
                running.merge(batch)
                return
        self._batches.append(batch)

    def _advance(
        self, batch: Batch[Sequence], logits: torch.Tensor, out: list[tuple[Stream, Item]]
    ) -> None:
        """Sample each row's next token, emit its text; keep the rows that go on."""
        rows = batch.rows
        tokens = next_tokens(
            logits,
            [s.params.temperature for s in rows],
            [s.params.top_p for s in rows],
            [s.generator for s in rows],
        )
        keep: list[int] = []
        inputs: list[int] = []
        for i, (sequence, token) in enumerate(zip(rows, tokens, strict=True)):
            if sequence.stream.cancelled:
                continue
            if not self._accept(sequence, token, out):
                keep.append(i)
                inputs.append(token)
        batch.advance(keep, inputs)

    def _accept(self, s: Sequence, token: int, out: list[tuple[Stream, Item]]) -> bool:
        """Take one generated token; True when the sequence is finished."""
        s.generated += 1
        s.unsent += 1
        reason: str | None = None
        if token in self.eos_ids:
            text, reason = self._final_text(s), "stop"
        else:
            text = s.stops.feed(s.detok.add(token))
            if s.stops.stopped:
                reason = "stop"
            elif s.generated >= s.limit:
                text += self._final_text(s)
                reason = "stop" if s.stops.stopped else "length"
        if text:
            out.append((s.stream, Chunk(text, s.unsent)))
            s.unsent = 0
        if reason is not None:
            out.append((s.stream, Finish(reason, len(s.prompt), s.generated)))
            return True
        return False

    @staticmethod
    def _final_text(s: Sequence) -> str:
        """The text held back by the detokenizer and the stop matcher, at the end."""
        text = s.stops.feed(s.detok.flush())
        return text if s.stops.stopped else text + s.stops.flush()

    def _fail(self, rows: list[Sequence], exc: Exception, out: list[tuple[Stream, Item]]) -> None:
        """A step raised: its rows fail with 500 and leave (the thread and other batches go on)."""
        log.error("transformers engine step failed", exc_info=exc)
        error = EngineError(500, f"engine error: {type(exc).__name__}: {exc}")
        failed = {id(s) for s in rows}
        out.extend((s.stream, error) for s in rows)
        for batch in self._batches:
            if any(id(s) in failed for s in batch.rows):
                batch.rows = []

    def _deliver(self, out: list[tuple[Stream, Item]]) -> None:
        if out and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_put_all, out)

    def _fail_all(self, error: EngineError) -> None:
        rows = [s for batch in self._batches for s in batch.rows] + list(self._waiting)
        self._batches = []
        self._waiting.clear()
        for _fn, future in self._calls:
            future.set_exception(error)
        self._calls.clear()
        self._deliver([(s.stream, error) for s in rows])


def _put_all(out: list[tuple[Stream, Item]]) -> None:
    for stream, item in out:
        stream.queue.put_nowait(item)


def _run_call(fn: Callable[[], Any], future: concurrent.futures.Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)
