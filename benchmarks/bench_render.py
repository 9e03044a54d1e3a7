"""Render (and verify) every example graph with both deployers; report milliseconds per graph.

make bench-render        (or: .venv/bin/python benchmarks/bench_render.py [--rounds N])
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import statistics
import time
from pathlib import Path

from drivetrain.api import InvalidGraph, load_file
from drivetrain.render import render_graph

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--examples", default=str(SHARED / "dgd-examples"))
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip verify")
    opts = parser.parse_args()
    graphs = []
    for path in sorted(glob.glob(f"{opts.examples}/*.yaml")):
        try:
            graphs += load_file(path).graphs
        except InvalidGraph:
            continue
    if not graphs:
        raise SystemExit(f"no example graphs under {opts.examples}")
    for multinode in ("lws", "grove"):
        per_graph = []
        for _ in range(opts.rounds):
            start = time.perf_counter()
            for graph in graphs:
                render_graph(graph, namespace="bench", multinode=multinode)
            per_graph.append((time.perf_counter() - start) * 1000 / len(graphs))
        print(
            f"render --multinode {multinode}: {len(graphs)} graphs x {opts.rounds} rounds, "
            f"median {statistics.median(per_graph):.3f} ms/graph, "
            f"best {min(per_graph):.3f} ms/graph"
        )
    if opts.verify:
        from drivetrain.verify import verify_manifests

        for multinode in ("lws", "grove"):
            start = time.perf_counter()
            processes = 0
            for graph in graphs:
                report = verify_manifests(
                    render_graph(graph, namespace="bench", multinode=multinode)
                )
                processes += len(report.processes)
            elapsed = time.perf_counter() - start
            print(
                f"verify --multinode {multinode}: {len(graphs)} graphs, {processes} processes, "
                f"{elapsed:.2f} s, {elapsed * 1000 / len(graphs):.1f} ms/graph"
            )
    start = time.perf_counter()
    for path in sorted(glob.glob(f"{opts.examples}/*.yaml")):
        with contextlib.suppress(InvalidGraph):
            load_file(path)
    print(f"load+validate all example files: {(time.perf_counter() - start) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
