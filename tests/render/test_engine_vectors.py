"""Dynamo's engine vectors, through drivetrain's engine API.

Exec-form results must equal Dynamo's exactly (the kubelet expands ``$(VAR)`` there).
Scripts are compared after translating Dynamo's deliberate differences
(``tests/render/dynamo_vectors.py``).  Where Dynamo defaults vLLM multinode to Ray,
drivetrain uses mp: those vectors assert drivetrain's mp flags instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain.render.engines import detect_engine, update_container, update_pod_spec
from drivetrain.render.engines.detect import PYTHON
from drivetrain.render.expr import shell_quote
from tests.render import dynamo_vectors as dv

UPDATE = dv.by_function(
    "SGLangBackend.UpdateContainer", "VLLMBackend.UpdateContainer", "updateVLLMMultinodeArgs",
    "TRTLLMBackend.UpdateContainer", "TRTLLMBackend.setupLeaderContainer",
    "TRTLLMBackend.setupWorkerContainer",
)  # fmt: skip


def _ids(vs: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vs]


def _engine(vector: dict[str, Any]) -> str:
    return vector["backend"]


def _expected_args(vector: dict[str, Any], ours: dict[str, Any]) -> list[str] | None:
    expected = vector["expected"]
    if "args" not in expected:
        return None
    args = list(expected["args"])
    shell = ours.get("command", [])[-1:] == ["-c"]
    return [dv.as_drivetrain_script(a) for a in args] if shell else args


@pytest.mark.parametrize("vector", UPDATE, ids=_ids(UPDATE))
def test_engine_update_matches_dynamo_or_drivetrain_on_purpose(vector: dict[str, Any]) -> None:
    dynamo_executor = dv.executor_of(vector)
    ctx = dv.context(vector, executor="mp")
    base = dv.container(vector)
    if vector["function"].startswith("TRTLLMBackend.setup"):
        # Dynamo's direct call skips the env UpdateContainer adds first; drivetrain has one entry point.
        base.setdefault("env", [])
    ours = update_container(_engine(vector), base, ctx)
    if (
        _engine(vector) == "vllm"
        and dynamo_executor == "ray"
        and ctx.multinode
        and ("ray start" in " ".join(vector["expected"].get("args", [])))
    ):
        # Deliberate difference: mp is drivetrain's default executor.
        joined = " ".join([*ours.get("command", []), *ours.get("args", [])])
        assert "--distributed-executor-backend mp" in joined
        assert "ray start" not in joined
        ray = update_container(_engine(vector), base, dv.context(vector, executor="ray"))
        ray_args = [dv.as_drivetrain_script(a) for a in vector["expected"]["args"]]
        assert _same_script(ray["args"], ray_args)
        return
    expected = vector["expected"]
    if expected.get("command"):
        assert ours.get("command") == expected["command"]
    want = _expected_args(vector, ours)
    if want is not None:
        got = ours.get("args", [])
        if vector["function"].startswith("TRTLLMBackend.setup"):
            got = [a.replace(" -x OMPI_MCA_orte_keep_fqdn_hostnames", "") for a in got]
        assert _same_script(got, want)
    if expected.get("args_unchanged"):
        assert ours.get("args", []) == base.get("args", [])
    if "probes_removed" in expected:
        removed = all(p not in ours for p in ("livenessProbe", "readinessProbe", "startupProbe"))
        assert removed == expected["probes_removed"]
    if "env_VLLM_CACHE_ROOT" in expected:
        env = {e["name"]: e.get("value") for e in ours.get("env", [])}
        assert env.get("VLLM_CACHE_ROOT") == expected["env_VLLM_CACHE_ROOT"]
    if "volumeMounts" in expected:
        assert ours.get("volumeMounts", []) == expected["volumeMounts"]
    if "env" in expected and vector["function"] == "TRTLLMBackend.UpdateContainer":
        assert ours.get("env", []) == expected["env"]
    if "readinessProbe" in expected and expected["readinessProbe"] is not None:
        assert ours["readinessProbe"] == expected["readinessProbe"]


def _same_script(ours: list[str], want: list[str]) -> bool:
    """Equal, allowing drivetrain's single-quote argv quoting inside generated scripts."""
    if ours == want:
        return True
    return [_unquote_words(a) for a in ours] == [_unquote_words(a) for a in want]


def _unquote_words(script: str) -> str:
    import shlex

    try:
        return " ".join(shlex.split(script, posix=True))
    except ValueError:
        return script


FLAGS = dv.by_function("SGLangBackend.getMultinodeFlags")


@pytest.mark.parametrize("vector", FLAGS, ids=_ids(FLAGS))
def test_sglang_flags_and_whether_they_need_a_shell(vector: dict[str, Any]) -> None:
    from drivetrain.render.engines.sglang import multinode_flags
    from drivetrain.render.expr import Context

    words = multinode_flags(dv.context(vector))
    assert any(w.needs_shell for w in words) == vector["expected"]["needs_shell"]
    ctx = Context.SHELL if vector["expected"]["needs_shell"] else Context.KUBELET
    rendered = " ".join(w.render(ctx) for w in words)
    want = vector["expected"]["flags"]
    assert rendered == (dv.as_drivetrain_script(want) if ctx is Context.SHELL else want)


PODSPEC = dv.by_function("VLLMBackend.UpdatePodSpec", "TRTLLMBackend.UpdatePodSpec")


@pytest.mark.parametrize("vector", PODSPEC, ids=_ids(PODSPEC))
def test_pod_level_engine_changes(vector: dict[str, Any]) -> None:
    inp = vector["input"]
    executor = dv.executor_of(vector)
    ctx = dv.context(vector, executor=executor)
    spec = inp.get("pod_spec") or {"containers": [{"name": "main", "image": "x"}]}
    if vector["backend"] == "vllm":
        # drivetrain waits for the leader only where mp rendezvous happens (TP/PP across pods).
        spec = {
            **spec,
            "containers": [
                {
                    **spec["containers"][0],
                    "args": ["--tensor-parallel-size", "16"],
                    "command": ["python3", "-m", "dynamo.vllm"],
                }
            ],
        }
        ctx = dv.EngineContext(**{**ctx.__dict__, "gpus_limit": 8})
    ours, objects = update_pod_spec(vector["backend"], spec, ctx)
    expected = vector["expected"]
    if "init_container_added" in expected:
        added = any(c["name"] == "wait-for-leader-mp" for c in ours.get("initContainers", []))
        assert added == expected["init_container_added"]
        if added:
            (init,) = [c for c in ours["initContainers"] if c["name"] == "wait-for-leader-mp"]
            want = dict(expected["init_container"])
            want.pop("env", None)
            assert init == want
            assert expected["volume_added"] in ours["volumes"]
            assert [o["metadata"]["name"] for o in objects] == ["test-dgd-wait-leader-script"]
            names = [c["name"] for c in ours["initContainers"]]
            assert names[-1] == "wait-for-leader-mp"
    for key in ("volume", "volumes_added"):
        if key in expected:
            for vol in expected[key] if isinstance(expected[key], list) else [expected[key]]:
                assert vol in ours["volumes"]


def test_a_bare_lws_variable_never_reaches_exec_form_args() -> None:
    vector = next(
        v
        for v in UPDATE
        if v["id"] == "sglang.pycmd.python-command-lws-worker-direct-append-kubelet-expansion"
    )
    ours = update_container("sglang", dv.container(vector), dv.context(vector))
    assert not any("${" in a or "$LWS" in a for a in ours["args"])


def test_scripts_never_carry_kubelet_references_for_injected_values() -> None:
    vector = next(
        v for v in UPDATE if v["id"] == "sglang.shellcmd.shell-command-worker-with-grove-env-vars"
    )
    ours = update_container("sglang", dv.container(vector), dv.context(vector))
    (script,) = ours["args"]
    assert "$(GROVE" not in script and "${GROVE_PCSG_NAME}" in script


TABLES = {v["function"]: v for v in dv.vectors() if v["id"].startswith("table.")}


def test_is_python_command_table() -> None:
    for row in TABLES["isPythonCommand"]["expected"]["table"]:
        cmd, want = row
        assert bool(PYTHON.match(cmd)) == want, cmd


def test_detect_backend_framework_table() -> None:
    for (command, args), want in TABLES["detectBackendFrameworkFromArgs"]["expected"]["table"]:
        try:
            got = detect_engine(command, args) or "noop"
        except ValueError:
            got = "ERROR"
        assert got == want, (command, args)


def test_shell_quoting_produces_one_word_that_sh_reads_back() -> None:
    import shlex

    for inp, _dynamo_form in TABLES["shellQuoteForBashC"]["expected"]["table"]:
        assert shlex.split(shell_quote(inp)) == [inp]
