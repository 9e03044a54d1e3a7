"""`drivetrain up -f examples/disagg.yaml`: a KV-routing frontend, a prefill and a decode mocker
as processes; requests are handed from one to the other (docs/kv-routing.md)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.local.test_up_e2e import start_up

pytestmark = pytest.mark.slow


def test_up_runs_the_disaggregated_example(tmp_path: Path) -> None:
    up = start_up(tmp_path, graph="examples/disagg.yaml")
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{up.port}/v1", api_key="unused", max_retries=0)
        health = httpx.get(f"http://127.0.0.1:{up.port}/health").json()
        assert sorted(i["role"] for i in health["instances"]) == ["decode", "prefill"]
        history = [{"role": "system", "content": "You answer briefly. " * 40}]
        cached = []
        for turn in range(2):
            history.append({"role": "user", "content": f"question {turn}"})
            reply = client.chat.completions.create(
                model="tiny",
                messages=history,  # type: ignore[arg-type]
                max_tokens=4,
            )
            assert reply.usage is not None and reply.usage.completion_tokens == 4
            details = reply.usage.prompt_tokens_details
            cached.append(details.cached_tokens if details is not None else None)
            history.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
        # The second turn's prompt is mostly on the decode worker already: under the example's
        # --disagg-threshold it skips the prefill worker, and finds its blocks cached.
        assert cached[0] == 0 and (cached[1] or 0) > 0
        metrics = httpx.get(f"http://127.0.0.1:{up.port}/metrics").text
        assert 'disaggregated_requests_total{model="tiny",path="prefill_decode"} 1' in metrics
        assert 'disaggregated_requests_total{model="tiny",path="decode_only_cached"} 1' in metrics
        assert up.stop(signal.SIGTERM) == 0
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()
