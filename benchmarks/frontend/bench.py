"""drivetrain frontend + mocker workers vs Dynamo 1.6.1 frontend + mocker, in one run.

Run by ``benchmarks/bench_frontend.sh`` (``make bench-frontend``), which prepares Dynamo's venv
and wrk first.  For each round, each system in turn (dynamo, drivetrain, dynamo, ...) is started
alone on the machine (a frontend and ``BENCH_WORKERS`` mocker workers on the same tokenizer
folder, file-based discovery, round-robin routing), warmed up, loaded with wrk (non-streaming
chat, ``max_tokens`` 16; then streaming, ``max_tokens`` 64; 32 connections, 10 s each) and
stopped.  Then the discovery latencies: registration-to-routable (spawn a worker, poll
``/v1/models`` until it lists the model) and death-to-removal (SIGKILL it, poll until
``/v1/models`` no longer lists it and ``/health`` no longer shows its instance).

Environment knobs: BENCH_ROUNDS (3), BENCH_DURATION (10), BENCH_CONNECTIONS (32),
BENCH_WORKERS (2), BENCH_SYSTEMS ("dynamo,drivetrain"), BENCH_DISCOVERY_REPEATS (3).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/stacks.py

from stacks import (  # noqa: E402
    MODEL,
    ROOT,
    Drivetrain,
    Dynamo,
    System,
    free_port,
    health_instances,
    http_json,
    listed_models,
    shown,
    tiny_model_dir,
    wait_until,
)

RESULTS = ROOT / "benchmarks" / "results" / "frontend.md"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "dynamo,drivetrain").split(",")
DISCOVERY_REPEATS = int(os.environ.get("BENCH_DISCOVERY_REPEATS", "3"))
PROBES: dict[str, dict[str, int]] = {}


def run_wrk(port: int, stream: bool, duration: int) -> dict[str, Any]:
    env = {**os.environ, "BENCH_STREAM": "1" if stream else "0"}
    argv = [
        "wrk",
        "-t2",
        f"-c{CONNECTIONS}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "chat.lua"),
        f"http://127.0.0.1:{port}/v1/chat/completions",
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["errors"] = sum(
        data[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return data


def probe(port: int) -> dict[str, int]:
    """What one response of each kind carries: the systems should do comparable work."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Explain, please."}]}
    req = urllib.request.Request(
        url,
        json.dumps({**body, "max_tokens": 16}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        plain = json.loads(resp.read())
    req = urllib.request.Request(
        url,
        json.dumps({**body, "max_tokens": 64, "stream": True}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    events = [ln for ln in raw.splitlines() if ln.startswith(b"data:")]
    return {
        "completion_tokens": int((plain.get("usage") or {}).get("completion_tokens") or 0),
        "content_chars": len(plain["choices"][0]["message"].get("content") or ""),
        "stream_events": len(events),
        "stream_bytes": len(raw),
    }


def make(name: str) -> System:
    return {"dynamo": Dynamo, "drivetrain": Drivetrain}[name](name)  # speedup 1e6


def measure_load(rounds: int) -> list[dict[str, Any]]:
    rows = []
    for rnd in range(1, rounds + 1):
        for name in SYSTEMS:
            system = make(name)
            try:
                system.start(WORKERS)
                if rnd == 1:
                    PROBES[name] = probe(system.port)
                run_wrk(system.port, stream=False, duration=2)  # warm-up, discarded
                plain = run_wrk(system.port, stream=False, duration=DURATION)
                stream = run_wrk(system.port, stream=True, duration=DURATION)
            finally:
                system.stop()
            row = {"round": rnd, "system": name, "plain": plain, "stream": stream}
            print(
                f"round {rnd} {name:<10} non-stream {plain['rps']:7.1f} req/s "
                f"p50 {plain['p50_us'] / 1000:6.1f} ms | stream {stream['rps']:7.1f} req/s "
                f"p50 {stream['p50_us'] / 1000:6.1f} ms | errors {plain['errors']}"
                f"/{stream['errors']}",
                flush=True,
            )
            rows.append(row)
    return rows


def measure_discovery(name: str, repeats: int) -> dict[str, list[float]]:
    """Frontend alone, then per repeat: spawn a worker → listed; SIGKILL it → gone."""
    system = make(name)
    system.port = free_port()
    system.store = tempfile.mkdtemp(prefix=f"bench-{name}-disc-")
    out: dict[str, list[float]] = {"routable": [], "models_drop": [], "health_drop": []}
    system.procs = [system.frontend()]
    try:
        wait_until(
            lambda: http_json(f"http://127.0.0.1:{system.port}/v1/models") is not None,
            60,
            f"{name} frontend up",
        )
        for _ in range(repeats):
            known = len(health_instances(system.port) or set())
            t0 = time.monotonic()
            worker = system.worker()
            wait_until(lambda: MODEL in listed_models(system.port), 120, "worker listed", 0.01)
            out["routable"].append(time.monotonic() - t0)
            wait_until(
                lambda known=known: len(health_instances(system.port) or set()) > known,
                30,
                "worker in /health",
                0.05,
            )
            t1 = time.monotonic()
            worker.kill()
            dropped: dict[str, float] = {}
            while len(dropped) < 2 and time.monotonic() - t1 < 60:
                now = time.monotonic() - t1
                if "models" not in dropped and MODEL not in listed_models(system.port):
                    dropped["models"] = now
                if "health" not in dropped:
                    ids = health_instances(system.port)
                    if ids is not None and len(ids) <= known:
                        dropped["health"] = now
                time.sleep(0.01)
            out["models_drop"].append(dropped.get("models", float("nan")))
            out["health_drop"].append(dropped.get("health", float("nan")))
            print(
                f"discovery {name:<10} routable {out['routable'][-1]:.2f} s, "
                f"models drop {out['models_drop'][-1]:.2f} s, "
                f"health drop {out['health_drop'][-1]:.2f} s",
                flush=True,
            )
    finally:
        system.stop()
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(rows: list[dict[str, Any]], discovery: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        "# Frontend benchmark: drivetrain vs Dynamo 1.6.1",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Each system alone: 1 frontend + {WORKERS} mocker workers (speedup 1e6, "
        f"model folder `{shown(tiny_model_dir())}`), "
        "file discovery, round-robin routing. Load: wrk, "
        f"{CONNECTIONS} connections, 2 threads, {DURATION} s per test after a 2 s warm-up; "
        "chat completions non-streaming `max_tokens` 16, streaming `max_tokens` 64. "
        "Systems alternate within this one run.",
        "",
        "| round | system | non-stream req/s | p50 ms | stream req/s | p50 ms | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        p, s = r["plain"], r["stream"]
        lines.append(
            f"| {r['round']} | {r['system']} | {p['rps']:.0f} | {p['p50_us'] / 1000:.1f} | "
            f"{s['rps']:.0f} | {s['p50_us'] / 1000:.1f} | {p['errors'] + s['errors']} |"
        )
    by: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        d = by.setdefault(r["system"], {"prps": [], "pp50": [], "srps": [], "sp50": []})
        d["prps"].append(r["plain"]["rps"])
        d["pp50"].append(r["plain"]["p50_us"] / 1000)
        d["srps"].append(r["stream"]["rps"])
        d["sp50"].append(r["stream"]["p50_us"] / 1000)
    lines += [
        "",
        "Medians over the rounds:",
        "",
        "| system | non-stream req/s | p50 ms | stream req/s | p50 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, d in by.items():
        lines.append(
            f"| {name} | {_median(d['prps']):.0f} | {_median(d['pp50']):.1f} | "
            f"{_median(d['srps']):.0f} | {_median(d['sp50']):.1f} |"
        )
    if "dynamo" in by and "drivetrain" in by:
        lines += [
            "",
            "Ratios drivetrain / dynamo per round (throughput: higher is better; "
            "p50: lower is better):",
            "",
            "| round | non-stream req/s | non-stream p50 | stream req/s | stream p50 |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        rounds = sorted({r["round"] for r in rows})
        ratios: dict[str, list[float]] = {"prps": [], "pp50": [], "srps": [], "sp50": []}
        for rnd in rounds:
            pair = {r["system"]: r for r in rows if r["round"] == rnd}
            if "dynamo" not in pair or "drivetrain" not in pair:
                continue
            dt, dy = pair["drivetrain"], pair["dynamo"]
            vals = {
                "prps": dt["plain"]["rps"] / dy["plain"]["rps"],
                "pp50": dt["plain"]["p50_us"] / dy["plain"]["p50_us"],
                "srps": dt["stream"]["rps"] / dy["stream"]["rps"],
                "sp50": dt["stream"]["p50_us"] / dy["stream"]["p50_us"],
            }
            for k, v in vals.items():
                ratios[k].append(v)
            lines.append(
                f"| {rnd} | {vals['prps']:.2f} | {vals['pp50']:.2f} | "
                f"{vals['srps']:.2f} | {vals['sp50']:.2f} |"
            )
        lines.append(
            f"| median | {_median(ratios['prps']):.2f} | {_median(ratios['pp50']):.2f}"
            f" | {_median(ratios['srps']):.2f} | {_median(ratios['sp50']):.2f} |"
        )
    if PROBES:
        lines += [
            "",
            "What one response carries (probed once per system before the load):",
            "",
            "| system | non-stream completion_tokens | content chars | stream SSE events "
            "| stream bytes |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, pr in PROBES.items():
            lines.append(
                f"| {name} | {pr['completion_tokens']} | {pr['content_chars']} | "
                f"{pr['stream_events']} | {pr['stream_bytes']} |"
            )
    if discovery:
        lines += [
            "",
            f"Discovery latencies (median of {DISCOVERY_REPEATS}; frontend running, "
            "one worker at a time; polling every 10 ms):",
            "",
            "| system | spawn → listed in /v1/models | SIGKILL → gone from /v1/models "
            "| SIGKILL → gone from /health |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, d in discovery.items():
            lines.append(
                f"| {name} | {_median(d['routable']):.2f} s | {_median(d['models_drop']):.2f} s "
                f"| {_median(d['health_drop']):.2f} s |"
            )
        lines += [
            "",
            "Spawn → listed includes the worker's interpreter start-up and imports "
            "(and, for Dynamo, the tokenizer load on the frontend).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    rows = measure_load(ROUNDS)
    discovery = {name: measure_discovery(name, DISCOVERY_REPEATS) for name in SYSTEMS}
    text = render(rows, discovery)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print()
    print(text)


if __name__ == "__main__":
    main()
