"""The one command-line rule set: flags are read as argparse reads them (vLLM, SGLang and TRT-LLM
parse with it), and $(VAR) is expanded as the kubelet expands it. The renderer, verify and
`drivetrain up` all read through it, so they are checked here against argparse itself."""

from __future__ import annotations

import argparse
import itertools
import textwrap

import pytest

from drivetrain import cmdline, verify
from drivetrain.api import load_text
from drivetrain.cmdline import flag_value, flag_values, has_flag, int_flag, replace_flag
from drivetrain.render import render_graph
from drivetrain.render.engines.vllm import TP_FLAGS
from drivetrain.verify import verify_manifests
from tests.verify.manifests import sglang_lws


def vllm_reads(argv: list[str]) -> int:
    """What vLLM's parser reads for the tensor-parallel size: argparse after vLLM's
    FlexibleArgumentParser turned `_` into `-` in long option names."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    parser.add_argument("--model")
    parser.add_argument("--enforce-eager", action="store_true")
    normalised = []
    for word in argv:
        if word.startswith("--"):
            key, sep, value = word.partition("=")
            word = key.replace("_", "-") + sep + value
        normalised.append(word)
    return parser.parse_args(normalised).tensor_parallel_size  # type: ignore[no-any-return]


def _occurrence(spelling: str, form: str, value: int) -> list[str]:
    return [f"{spelling}={value}"] if form == "=" else [spelling, str(value)]


def _argvs() -> list[list[str]]:
    """One to three occurrences of the flag, every spelling and form, between other flags."""
    out = []
    shapes = list(itertools.product(TP_FLAGS, ("=", " ")))
    for count in (1, 2, 3):
        for combo in itertools.product(range(len(shapes)), repeat=count):
            argv = ["--model", "m"]
            for n, index in enumerate(combo):
                spelling, form = shapes[index]
                argv += _occurrence(spelling, form, 2 + n)
                argv += ["--enforce-eager"] if n % 2 else []
            out.append(argv)
    return out


def test_flag_value_reads_what_argparse_reads() -> None:
    argvs = _argvs()
    assert len(argvs) == 6 + 6**2 + 6**3  # every order of every spelling and form
    for argv in argvs:
        assert int_flag(argv, *TP_FLAGS) == vllm_reads(argv), argv
        assert flag_value(argv, *TP_FLAGS) == str(vllm_reads(argv)), argv


def test_a_word_that_looks_like_an_option_is_not_a_value_but_a_negative_number_is() -> None:
    assert flag_value(["--rank", "--x", "--rank", "-1"], "--rank") == "-1"
    assert flag_values(["--rank", "--x"], "--rank") == []
    assert has_flag(["--rank", "--x"], "--rank")
    assert flag_value(["--rank"], "--rank") is None
    assert int_flag(["--rank=two"], "--rank") == "two"


def test_replace_flag_sets_every_occurrence_in_its_own_form() -> None:
    argv = ["frontend", "--port", "1", "--port=2", "--host", "h"]
    assert replace_flag(argv, "--port", "9") == [
        "frontend",
        "--port",
        "9",
        "--port=9",
        "--host",
        "h",
    ]
    assert replace_flag(["frontend"], "--port", "9") == ["frontend"]
    assert replace_flag(["frontend"], "--port", "9", add=True) == ["frontend", "--port", "9"]
    # A flag left without its value gets one: the program would reject the argv otherwise.
    assert replace_flag(["f", "--port", "--host", "h"], "--port", "9") == [
        "f",
        "--port",
        "9",
        "--host",
        "h",
    ]


VLLM_GRAPH = """
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: tp}
spec:
  services:
    decode:
      componentType: worker
      multinode: {nodeCount: 2}
      resources: {limits: {gpu: "8"}}
      extraPodSpec:
        mainContainer:
          image: vllm/vllm-openai:v0.10
          command: [python3, -m, dynamo.vllm]
          args: [--model, m, ARGS]
"""


@pytest.mark.parametrize(
    ("args", "distributed"),
    [
        ("--tensor-parallel-size, '4', --tensor-parallel-size, '16'", True),
        ("--tensor-parallel-size, '16', --tensor-parallel-size, '4'", False),
        ("-tp, '16', --tensor_parallel_size=4", False),
        ("--tensor_parallel_size=4, -tp, '16'", True),
    ],
)
def test_the_renderer_reads_the_tensor_parallel_size_vllm_reads(
    args: str, distributed: bool
) -> None:
    """8 GPUs per pod: a size of 16 spans the pods (the renderer injects --nnodes and a rank),
    4 fits in one pod (nothing is injected)."""
    (graph,) = load_text(textwrap.dedent(VLLM_GRAPH.replace("ARGS", args))).graphs
    objects = render_graph(graph, multinode="lws")
    (lws,) = [o for o in objects if o["kind"] == "LeaderWorkerSet"]
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][-1]
    assert ("--nnodes" in leader["args"]) is distributed


def test_verify_reads_the_rank_the_engine_reads() -> None:
    common = ["--dist-init-addr", "$(LWS_LEADER_ADDRESS):29500", "--nnodes", "3"]
    # Each worker first says rank 0, then its real rank: SGLang's argparse reads the last.
    worker = [*common, "--node-rank", "0", "--node-rank", "$(LWS_WORKER_INDEX)"]
    report = verify_manifests([sglang_lws(worker_args=worker)])
    assert report.ok, [str(p) for p in report.problems]
    assert sorted(p.rank for p in report.processes if p.rank is not None) == [0, 0, 1, 1, 2, 2]


def test_verify_and_the_cmdline_module_share_one_expansion() -> None:
    assert verify.expand is cmdline.expand
    assert cmdline.expand("$(A)-$(B)-$$(A)-$A", [{"A": "x"}]) == "x-$(B)-$(A)-$A"
