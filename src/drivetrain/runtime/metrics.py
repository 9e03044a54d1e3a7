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
        for histogram in (self.ttft, self.itl, self.duration):
            lines.extend(histogram.render())
        return ("\n".join(lines) + "\n").encode()
