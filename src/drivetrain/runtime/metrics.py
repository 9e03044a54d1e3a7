"""Prometheus text exposition for the frontend, written by hand (no client library needed).

Updates are plain dict/list arithmetic on the event loop thread, cheap enough for every request
and every token.  Names use the ``drivetrain_frontend_`` prefix and mirror Dynamo's
``dynamo_frontend_*`` families (docs/runtime.md) where one exists.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable

PREFIX = "drivetrain_frontend_"

TTFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ITL_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
OVERLAP_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    inner = ",".join(
        f'{n}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
        for n, v in zip(names, values, strict=True)
    )
    return "{" + inner + "}"


class Histogram:
    def __init__(
        self, name: str, help_text: str, buckets: tuple[float, ...], labels: tuple[str, ...]
    ) -> None:
        self.name = PREFIX + name
        self.help = help_text
        self.buckets = buckets
        self.label_names = labels
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            # counts per bucket (+Inf last), then sum
            series = self._series[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-1] += value

    def observe_many(self, labels: tuple[str, ...], value: float, count: int) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += count
        series[-1] += value * count

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, series in self._series.items():
            cumulative = 0.0
            base = _labels(self.label_names, labels)
            for bound, count in zip((*self.buckets, float("inf")), series[:-1], strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                inner = base[1:-1] + "," if base else ""
                yield f'{self.name}_bucket{{{inner}le="{le}"}} {cumulative:g}'
            yield f"{self.name}_sum{base} {series[-1]:.9g}"
            yield f"{self.name}_count{base} {cumulative:g}"


class FrontendMetrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.inflight: dict[str, int] = defaultdict(int)
        self.output_tokens: dict[str, int] = defaultdict(int)
        self.retries: dict[str, int] = defaultdict(int)
        # (model, reason): queue_full, queue_timeout, no_instance, shutting_down, context_length
        self.rejected: dict[tuple[str, str], int] = defaultdict(int)
        self.ttft = Histogram(
            "time_to_first_token_seconds", "Time to first token.", TTFT_BUCKETS, ("model",)
        )
        self.itl = Histogram(
            "inter_token_latency_seconds",
            "Time between tokens (a batch of n tokens counts n-1 zero gaps).",
            ITL_BUCKETS,
            ("model",),
        )
        self.duration = Histogram(
            "request_duration_seconds",
            "Whole request time.",
            DURATION_BUCKETS,
            ("model", "endpoint"),
        )
        # Filled by the frontend: () -> {(namespace, component): count}
        self.instances_source: Callable[[], dict[tuple[str, str], int]] = dict
        # Filled by the frontend: () -> {model: requests waiting in its admission queue}
        self.queued_source: Callable[[], dict[str, int]] = dict
        # KV routing and disaggregation (docs/kv-routing.md).
        self.kv_overlap = Histogram(
            "kv_overlap_blocks",
            "Prompt blocks cached on the instance each routed request went to.",
            OVERLAP_BUCKETS,
            ("model",),
        )
        # worker address -> [prompt tokens, of which cached], from the finish frames
        self.prompt_tokens: dict[str, list[int]] = {}
        # (model, path): prefill_decode, decode_only_cached, decode_only_no_prefill
        self.disagg: dict[tuple[str, str], int] = defaultdict(int)
        # Filled by the frontend: () -> {worker address: KV blocks indexed from its events}
        self.kv_blocks_source: Callable[[], dict[str, int]] = dict

    def prompt_cache(self, worker: str, prompt_tokens: int, cached_tokens: int) -> None:
        counts = self.prompt_tokens.get(worker)
        if counts is None:
            counts = self.prompt_tokens[worker] = [0, 0]
        counts[0] += prompt_tokens
        counts[1] += cached_tokens

    def _render_kv(self) -> list[str]:
        lines: list[str] = []
        worker = ("instance",)
        for metric, kind, help_text, index in (
            ("prompt_tokens_total", "counter", "Prompt tokens the instance served.", 0),
            ("cached_prompt_tokens_total", "counter", "Of those, found in its prefix cache.", 1),
        ):
            name = PREFIX + metric
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for address, counts in sorted(self.prompt_tokens.items()):
                lines.append(f"{name}{_labels(worker, (address,))} {counts[index]}")
        name = PREFIX + "kv_cache_hit_rate"
        lines += [
            f"# HELP {name} Cached prompt tokens over prompt tokens, per instance.",
            f"# TYPE {name} gauge",
        ]
        for address, (total, cached) in sorted(self.prompt_tokens.items()):
            rate = cached / total if total else 0.0
            lines.append(f"{name}{_labels(worker, (address,))} {rate:.6g}")
        name = PREFIX + "kv_indexed_blocks"
        lines += [
            f"# HELP {name} KV blocks the router knows an instance holds (from its events).",
            f"# TYPE {name} gauge",
        ]
        for address, blocks in sorted(self.kv_blocks_source().items()):
            lines.append(f"{name}{_labels(worker, (address,))} {blocks}")
        name = PREFIX + "disaggregated_requests_total"
        lines += [
            f"# HELP {name} Requests of disaggregated models by path (prefill_decode, "
            "decode_only_cached, decode_only_no_prefill).",
            f"# TYPE {name} counter",
        ]
        for (model, path), value in sorted(self.disagg.items()):
            lines.append(f"{name}{_labels(('model', 'path'), (model, path))} {value}")
        return lines

    def request_done(self, model: str, endpoint: str, status: int, stream: bool) -> None:
        self.requests[(model, endpoint, str(status), "stream" if stream else "unary")] += 1

    def render(self) -> bytes:
        lines: list[str] = []
        name = PREFIX + "requests_total"
        lines += [
            f"# HELP {name} Requests by model, endpoint, HTTP status and type.",
            f"# TYPE {name} counter",
        ]
        for labels, value in self.requests.items():
            lines.append(
                f"{name}{_labels(('model', 'endpoint', 'status', 'request_type'), labels)} {value}"
            )
        for metric, kind, help_text, series in (
            ("inflight_requests", "gauge", "Requests being served now.", self.inflight),
            ("output_tokens_total", "counter", "Tokens streamed to clients.", self.output_tokens),
            ("retries_total", "counter", "Requests retried on another instance.", self.retries),
        ):
            name = PREFIX + metric
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for model, value in series.items():
                lines.append(f"{name}{_labels(('model',), (model,))} {value}")
        name = PREFIX + "queued_requests"
        lines += [
            f"# HELP {name} Requests waiting in the model's admission queue.",
            f"# TYPE {name} gauge",
        ]
        for model, value in sorted(self.queued_source().items()):
            lines.append(f"{name}{_labels(('model',), (model,))} {value}")
        name = PREFIX + "rejected_requests_total"
        lines += [
            f"# HELP {name} Requests refused by a limit, by model and reason "
            "(queue_full, queue_timeout, no_instance, shutting_down, context_length).",
            f"# TYPE {name} counter",
        ]
        for (model, reason), value in sorted(self.rejected.items()):
            lines.append(f"{name}{_labels(('model', 'reason'), (model, reason))} {value}")
        name = PREFIX + "instances"
        lines += [f"# HELP {name} Worker instances in scope.", f"# TYPE {name} gauge"]
        for (namespace, component), value in sorted(self.instances_source().items()):
            lines.append(
                f"{name}{_labels(('namespace', 'component'), (namespace, component))} {value}"
            )
        lines += self._render_kv()
        for histogram in (self.ttft, self.itl, self.duration, self.kv_overlap):
            lines.extend(histogram.render())
        return ("\n".join(lines) + "\n").encode()
