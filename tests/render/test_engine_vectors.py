"""Dynamo's operator test vectors for engine injection, through drivetrain's engine API.

Each vector of ``../shared/vectors/dynamo-operator-vectors.json`` that concerns the engines
(SGLang, vLLM, TRT-LLM), the deployers' host lists and the small tables around them is one
test here.  Where drivetrain differs from Dynamo on purpose, the test asserts drivetrain's
output and its name or the constant it uses says which difference (docs/engines.md lists
them all):

* SCRIPT_FORM: a script that a shell evaluates reads env as ``${VAR}``, never ``$(VAR)``.
* MP_BY_DEFAULT: without the executor annotation vLLM multinode uses mp, not Ray.
* POSIX_QUOTING: words are quoted with single quotes; the argv a shell builds is the same.
* ONE_ARITHMETIC: ``$((8 * (I + 1)))`` instead of ``$(( 8 * $((I + 1)) ))``; same value.
* WAIT_ONLY_FOR_RENDEZVOUS: the mp worker's wait-for-leader only where a rendezvous exists.
* WAIT_WITHOUT_API: the wait script connects to the leader's port; no Kubernetes API.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from drivetrain.render import engines
from drivetrain.render.engines import EngineChoiceError, detect, sglang, trtllm
from drivetrain.render.engines.detect import is_shell_form
from drivetrain.render.expr import Context, any_needs_shell, shell_quote
from drivetrain.render.naming import GRAPH_LABEL
from tests.render.vector_adapter import (
    as_script,
    component,
    container_of,
    context_of,
    deployer_of,
    ids,
    sh_words,
    vector,
)

GROVE_LEADER = "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-ldr-0.$(GROVE_HEADLESS_SERVICE)"
GROVE_ENV = {"GROVE_PCSG_NAME": "g-decode", "GROVE_PCSG_INDEX": "0", "GROVE_HEADLESS_SERVICE": "hs"}


def update(v: dict[str, Any], **ctx: Any) -> dict[str, Any]:
    return engines.update_container(v["backend"], container_of(v), context_of(v, **ctx))


def assert_command(out: dict[str, Any], expected: dict[str, Any]) -> None:
    """Exec-form args exactly as Dynamo's; scripts with ${VAR} for $(VAR) (SCRIPT_FORM)."""
    if "command" in expected:
        assert (out.get("command") or []) == expected["command"]
    script = is_shell_form(out.get("command") or [])
    want = [as_script(a) if script else a for a in expected["args"]]
    assert (out.get("args") or []) == want


# --------------------------------------------------------------------------- SGLang

SGLANG_COMMANDS = [
    i
    for i in ids("SGLangBackend.UpdateContainer")
    if i.startswith(("sglang.pycmd.", "sglang.shellcmd.")) or i == "shared-vectors-missing"
]


@pytest.mark.parametrize("vector_id", SGLANG_COMMANDS)
def test_sglang_flags_land_where_dynamo_puts_them(vector_id: str) -> None:
    v = vector(vector_id)
    assert_command(update(v), v["expected"])


@pytest.mark.parametrize("vector_id", ids("SGLangBackend.getMultinodeFlags"))
def test_sglang_multinode_flags_and_whether_they_need_a_shell(vector_id: str) -> None:
    v = vector(vector_id)
    words = sglang.multinode_flags(context_of(v))
    needs_shell = any_needs_shell(words)
    assert needs_shell == v["expected"]["needs_shell"]
    if needs_shell:  # SCRIPT_FORM: they can only be rendered into a script
        rendered = " ".join(w.render(Context.SHELL) for w in words)
        assert rendered == as_script(v["expected"]["flags"])
    else:
        assert " ".join(w.render(Context.KUBELET) for w in words) == v["expected"]["flags"]


SGLANG_PROBES = [
    i for i in ids("SGLangBackend.UpdateContainer") if i.startswith("sglang.probes.")
] or ["shared-vectors-missing"]


@pytest.mark.parametrize("vector_id", SGLANG_PROBES)
def test_sglang_removes_probes_only_on_multinode_workers(vector_id: str) -> None:
    v = vector(vector_id)
    out = update(v)
    probes = ("livenessProbe", "readinessProbe", "startupProbe")
    if v["expected"]["probes_removed"]:
        assert not any(p in out for p in probes)
    else:
        assert all(out[p] == v["input"][p] for p in probes)


# --------------------------------------------------------------------------- vLLM


def mp_flags(n: int, leader: str, rank: str, worker: bool) -> list[str]:
    flags = ["--distributed-executor-backend", "mp", "--nnodes", str(n), "--master-addr", leader]
    flags += ["--master-port", "29500", "--node-rank", rank]
    return flags + (["--headless"] if worker else [])


JSON_ARG = '{"kv_connector": "NixlConnector", "kv_role": "kv_both"}'
GROVE_RANK = "$((GROVE_PCLQ_POD_INDEX + 1))"

#: MP_BY_DEFAULT: Dynamo renders these (no executor annotation, no origin version) with
#: Ray; drivetrain renders them with mp, exactly as Dynamo's own mp vectors look.
MP_INSTEAD_OF_RAY: dict[str, dict[str, Any]] = {
    "vllm.update.multinode-leader-uses-ray-no-annotations-legacy": {
        "command": ["python3", "-m", "dynamo.vllm"],
        "args": [
            "--model",
            "test",
            "--tensor-parallel-size",
            "8",
            *mp_flags(3, GROVE_LEADER, "0", worker=False),
        ],
    },
    "vllm.update.multinode-leader-uses-ray-with-json-args-no-annotations-legacy": {
        "command": ["python3", "-m", "dynamo.vllm"],
        "args": [
            "--model",
            "test",
            "--tensor-parallel-size",
            "8",
            "--kv-transfer-config",
            JSON_ARG,
            *mp_flags(3, GROVE_LEADER, "0", worker=False),
        ],
    },
    "vllm.update.multinode-worker-uses-ray-no-annotations-legacy": {
        "command": ["sh", "-c"],
        "args": [
            "exec python3 -m dynamo.vllm --model test --tensor-parallel-size 8 "
            + " ".join(mp_flags(3, as_script(GROVE_LEADER), GROVE_RANK, worker=True))
        ],
    },
    "vllm.update.multinode-worker-with-lws-deployment-type-no-annotations-legacy-ray": {
        "command": [],
        "args": [
            "python3",
            "-m",
            "dynamo.vllm",
            "--tensor-parallel-size",
            "8",
            *mp_flags(2, "$(LWS_LEADER_ADDRESS)", "$(LWS_WORKER_INDEX)", worker=True),
        ],
    },
    "vllm.multinodeargs.leader-uses-ray-nil-annotations-legacy": {
        "command": ["python3"],
        "args": [
            "-m",
            "dynamo.vllm",
            "--tensor-parallel-size",
            "16",
            *mp_flags(2, GROVE_LEADER, "0", worker=False),
        ],
    },
    # No command: the shell goes into args so that the image's entrypoint still runs.
    "vllm.multinodeargs.worker-with-ray-distributed-launch-grove-nil-annotations": {
        "command": [],
        "args": [
            "sh",
            "-c",
            "exec python3 -m dynamo.vllm --tensor-parallel-size 16 "
            + " ".join(mp_flags(2, as_script(GROVE_LEADER), GROVE_RANK, worker=True)),
        ],
    },
    "vllm.multinodeargs.worker-with-ray-distributed-launch-lws-nil-annotations": {
        "command": [],
        "args": [
            "python3",
            "-m",
            "dynamo.vllm",
            "--tensor-parallel-size",
            "16",
            *mp_flags(2, "$(LWS_LEADER_ADDRESS)", "$(LWS_WORKER_INDEX)", worker=True),
        ],
    },
}

#: ONE_ARITHMETIC: the data-parallel start rank of a Grove worker.
ONE_ARITHMETIC = {
    "vllm.multinodeargs.worker-with-data-parallel-launch-grove",
    "vllm.multinodeargs.worker-with-data-parallel-launch-grove-tp-1",
}
#: POSIX_QUOTING: a JSON argument re-quoted into the Ray leader's script.
POSIX_QUOTED_RAY = {"vllm.update.multinode-leader-uses-ray-with-json-args-no-annotations-legacy"}

VLLM_COMMANDS = [
    i
    for i in ids("VLLMBackend.UpdateContainer", "updateVLLMMultinodeArgs")
    if not i.startswith("vllm.compilecache.")
]


@pytest.mark.parametrize("vector_id", VLLM_COMMANDS)
def test_vllm_multinode_command_as_dynamo_renders_it(vector_id: str) -> None:
    v = vector(vector_id)
    # Asked for Ray explicitly, drivetrain renders what Dynamo renders by default.
    out = update(v, executor="ray") if vector_id in MP_INSTEAD_OF_RAY else update(v)
    expected = v["expected"]
    if vector_id in ONE_ARITHMETIC:
        assert out["command"] == ["sh", "-c"]
        (script,) = out["args"]
        (dynamo_script,) = expected["args"]
        assert script.startswith("exec ") and dynamo_script.startswith("exec ")
        for index in ("0", "1", "6"):  # worker pods 0, 1, 6 of the worker clique
            env = {**GROVE_ENV, "GROVE_PCLQ_POD_INDEX": index}
            assert sh_words(script[5:], env) == sh_words(as_script(dynamo_script)[5:], env)
    elif vector_id in POSIX_QUOTED_RAY:
        (script,) = out["args"]
        (dynamo_script,) = expected["args"]
        prefix = "ray start --head --port=6379 && "
        assert script.startswith(prefix) and dynamo_script.startswith(prefix)
        assert sh_words(script[len(prefix) :]) == sh_words(dynamo_script[len(prefix) :])
        assert sh_words(script[len(prefix) :])[-4:-2] == ["--kv-transfer-config", JSON_ARG]
    else:
        assert_command(out, expected)


@pytest.mark.parametrize("vector_id", list(MP_INSTEAD_OF_RAY))
def test_vllm_multinode_uses_mp_without_the_executor_annotation(vector_id: str) -> None:
    """MP_BY_DEFAULT: Dynamo's default without annotation or origin version is Ray."""
    v = vector(vector_id)
    assert component(v).get("annotations") is None
    out = update(v)
    expected = MP_INSTEAD_OF_RAY[vector_id]
    assert (out.get("command") or []) == expected["command"]
    assert out["args"] == expected["args"]


COMPILE_CACHE = [
    i for i in ids("VLLMBackend.UpdateContainer") if i.startswith("vllm.compilecache.")
] or ["shared-vectors-missing"]


@pytest.mark.parametrize("vector_id", COMPILE_CACHE)
def test_vllm_compilation_cache_sets_vllm_cache_root(vector_id: str) -> None:
    v = vector(vector_id)
    env = {e["name"]: e.get("value") for e in update(v).get("env", [])}
    assert env.get("VLLM_CACHE_ROOT") == v["expected"]["env_VLLM_CACHE_ROOT"]


# The vectors' pod specs hold a bare main container: no engine args, so no vLLM rendezvous.
TP_ACROSS_NODES = {"command": ["python3"], "args": ["-m", "dynamo.vllm", "-tp", "16"]}


def pod_spec_update(v: dict[str, Any], main: dict[str, Any] | None = None, **ctx: Any):
    spec = v["input"]["pod_spec"]
    if main is not None:
        spec = {**spec, "containers": [{**spec["containers"][0], **main}]}
    context = context_of(v, **({"gpus_limit": 8} | ctx))
    return engines.update_pod_spec(v["backend"], spec, context)


@pytest.mark.parametrize("vector_id", ids("VLLMBackend.UpdatePodSpec"))
def test_vllm_mp_worker_waits_for_the_leader_rendezvous(vector_id: str) -> None:
    v = vector(vector_id)
    # WAIT_ONLY_FOR_RENDEZVOUS: the pod gets the TP-across-nodes args that make one.
    # MP_BY_DEFAULT: the "-legacy" vector is Dynamo's Ray default; drivetrain is asked for Ray.
    overrides = {"executor": "ray"} if vector_id.endswith("-legacy") else {}
    spec, objects = pod_spec_update(v, TP_ACROSS_NODES, **overrides)
    before = v["input"]["pod_spec"]
    if not v["expected"]["init_container_added"]:
        assert spec.get("initContainers", []) == before.get("initContainers", [])
        assert spec.get("volumes", []) == before.get("volumes", [])
        assert objects == []
        return
    want = v["expected"]["init_container"]
    *kept, init = spec["initContainers"]
    assert kept == before.get("initContainers", [])
    assert init.get("env", []) == want["env"]
    assert {k: init[k] for k in ("name", "image", "command", "volumeMounts")} == {
        k: want[k] for k in ("name", "image", "command", "volumeMounts")
    }
    assert spec["volumes"][-1] == v["expected"]["volume_added"]
    assert len(spec["volumes"]) == len(before.get("volumes", [])) + 1
    assert [o["metadata"]["name"] for o in objects] == ["test-dgd-wait-leader-script"]


def test_vllm_mp_worker_without_a_rendezvous_does_not_wait() -> None:
    """WAIT_ONLY_FOR_RENDEZVOUS: the vector's bare container starts no TP group across nodes."""
    v = vector("vllm.podspec.mp-worker-with-grove-deployer-injects-init-container")
    spec, objects = pod_spec_update(v)
    assert "initContainers" not in spec and objects == []


def test_vllm_ray_worker_without_annotation_waits_as_an_mp_worker() -> None:
    """MP_BY_DEFAULT: Dynamo's Ray default adds no init container; drivetrain's mp does."""
    v = vector("vllm.podspec.ray-worker-does-not-inject-init-container-legacy")
    spec, _ = pod_spec_update(v, TP_ACROSS_NODES)
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-leader-mp"]


def test_wait_leader_configmap_as_dynamo_names_it() -> None:
    v = vector("vllm.waitLeaderConfigMap")
    inp, expected = v["input"], v["expected"]
    cm = engines.wait_leader_configmap(inp["dgd"], inp["namespace"])
    assert cm is not None
    assert cm["metadata"]["name"] == expected["name"]
    assert cm["metadata"]["namespace"] == expected["namespace"]
    assert cm["metadata"]["labels"] == {GRAPH_LABEL: inp["dgd"]}  # drivetrain's graph label
    assert sorted(cm["data"]) == expected["data_keys"]
    script = cm["data"]["wait-for-leader.py"]
    kubernetes_api = {"leader_pod_is_healthy", "kubernetes.default.svc", "fieldSelector"}
    kubernetes_api |= {"deletionTimestamp", "fieldSelector=status.podIP="}
    for needle in expected["script_contains"]:
        if needle in kubernetes_api:
            assert needle not in script  # WAIT_WITHOUT_API
        elif needle.startswith("time.sleep("):
            assert "time.sleep(interval)" in script and '"WAIT_INTERVAL_SECONDS", "5"' in script
        else:
            assert needle in script


# --------------------------------------------------------------------------- TRT-LLM


@pytest.mark.parametrize("vector_id", ids("TRTLLMBackend.UpdateContainer"))
def test_trtllm_update_container(vector_id: str) -> None:
    v = vector(vector_id)
    out = update(v)
    expected = v["expected"]
    assert_command(out, expected)
    assert out.get("volumeMounts", []) == expected["volumeMounts"]
    assert out.get("env", []) == expected["env"]
    assert ("livenessProbe" not in out) == expected["livenessProbe_removed"]
    assert ("startupProbe" not in out) == expected["startupProbe_removed"]
    readiness = expected["readinessProbe"]
    assert out["readinessProbe"] == (
        v["input"]["readinessProbe"] if readiness is None else readiness
    )


def test_trtllm_leader_quotes_json_arguments_for_the_nested_bash() -> None:
    """POSIX_QUOTING: the engine's argv inside ``bash -c`` is the one Dynamo's quoting gives."""
    v = vector("trtllm.leader.json-override-engine-args")
    script = trtllm.leader_script(container_of(v), context_of(v))
    launch = "bash -c 'trtllm-llmapi-launch"
    assert launch in v["expected"]["args[0]_contains"] and launch in script
    ours = script[script.index("bash -c ") + len("bash -c ") :]
    # Dynamo's inner command line, rebuilt around the fragment its test asserts.
    fragment = v["expected"]["args[0]_contains"][1]
    assert fragment.startswith("--override-engine-args ")
    dynamo = (
        "'trtllm-llmapi-launch python3 -m dynamo.trtllm --model-path deepseek-ai/DeepSeek-R1 "
        f"{fragment}'"
    )
    (ours_inner,) = sh_words(ours)
    (dynamo_inner,) = sh_words(dynamo)
    assert sh_words(ours_inner) == sh_words(dynamo_inner)
    assert sh_words(ours_inner)[-1] == '{"load_format": "DUMMY", "tensor_parallel_size": 8}'


LEADER_SCRIPTS = [i for i in ids("TRTLLMBackend.setupLeaderContainer") if "json" not in i]


@pytest.mark.parametrize("vector_id", LEADER_SCRIPTS)
def test_trtllm_leader_runs_mpirun_over_ssh(vector_id: str) -> None:
    v = vector(vector_id)
    script = trtllm.leader_script(container_of(v), context_of(v))
    (expected,) = v["expected"]["args"]
    assert script == as_script(expected)  # SCRIPT_FORM


@pytest.mark.parametrize("vector_id", ids("TRTLLMBackend.setupWorkerContainer"))
def test_trtllm_worker_runs_only_sshd(vector_id: str) -> None:
    v = vector(vector_id)
    ctx = context_of(v, deployer=deployer_of(None), role="worker", node_count=2)
    out = engines.update_container("trtllm", container_of(v), ctx)
    assert out["command"] == v["expected"]["command"]
    assert out["args"] == v["expected"]["args"]


@pytest.mark.parametrize("vector_id", ids("TRTLLMBackend.UpdatePodSpec"))
def test_trtllm_pod_spec_mounts_the_ssh_secret(vector_id: str) -> None:
    v = vector(vector_id)
    spec, objects = engines.update_pod_spec("trtllm", v["input"]["pod_spec"], context_of(v))
    expected = v["expected"]
    volumes = spec.get("volumes", [])
    assert len(volumes) == expected["volume_count"]
    ssh = [vol for vol in volumes if vol["name"] == "mpi-run-ssh-secret"]
    assert ssh == ([expected["ssh_volume"]] if expected["ssh_volume"] else [])
    assert objects == []


# --------------------------------------------------------------------------- deployers


@pytest.mark.parametrize("vector_id", ids("MultinodeDeployer.GetHostNames"))
def test_host_lists_leader_first(vector_id: str) -> None:
    v = vector(vector_id)
    hosts = deployer_of(v["deployer"]).host_names(v["service_name"], v["node_count"])
    # Host lists only go into scripts (mpirun -H, DNS waits): SCRIPT_FORM.
    rendered = [h.render(Context.SHELL) for h in hosts]
    assert rendered == [as_script(h) for h in v["expected"]["hostnames"]]


# --------------------------------------------------------------------------- tables


def table(vector_id: str) -> list[list[Any]]:
    return vector(vector_id)["expected"]["table"]


def test_python_interpreters_are_recognised() -> None:
    for program, is_python in table("table.isPythonCommand"):
        assert bool(detect.PYTHON.match(program)) == is_python, program


def test_quoted_words_mean_what_dynamos_quoting_means() -> None:
    """POSIX_QUOTING: single quotes instead of Dynamo's double quotes.

    Dynamo's form is only valid nested inside a single-quoted ``bash -c '...'`` (its
    ``'"'"'`` for a quote assumes an outer single quote); drivetrain's word is valid on its
    own and nests by quoting the whole inner command again.  Words Dynamo leaves bare stay
    bare; the empty word stays an (empty) argument where Dynamo's quoting drops it.
    """
    for word, dynamo in table("table.shellQuoteForBashC"):
        ours = shell_quote(word)
        assert sh_words(ours) == [word]
        assert sh_words(sh_words(shell_quote(f"printf x {ours}"))[0])[-1] == word
        if word and dynamo == word:
            assert ours == word
        if word:
            (inner,) = sh_words(f"'{dynamo}'")
            assert sh_words(inner) == [word]
    assert shell_quote("") == "''"


def test_executor_annotation_wins_and_the_default_is_mp() -> None:
    """MP_BY_DEFAULT: rows without a valid annotation pick mp; Dynamo's pick Ray there
    unless the origin version is at least 1.0.0."""
    dynamo_ray_by_default = 0
    for ann, dynamo_uses_mp in table("table.shouldUseMpBackend"):
        value = (ann or {}).get("nvidia.com/vllm-distributed-executor-backend", "")
        ours = engines.executor_for(ann)
        if value.lower() in ("mp", "ray"):
            assert (ours == "mp") == dynamo_uses_mp, ann
        else:
            assert ours == "mp"
            dynamo_ray_by_default += not dynamo_uses_mp
    assert dynamo_ray_by_default == 2  # the rows where drivetrain and Dynamo differ


def test_operator_origin_version_does_not_change_the_executor() -> None:
    """MP_BY_DEFAULT: Dynamo's VLLMMultiprocessing gate (origin version >= 1.0.0) is moot."""
    for ann, _gate in table("table.operatorOriginFeatureGate"):
        assert engines.executor_for(ann) == "mp"
        assert engines.executor_for(ann, default="ray") == "ray"


def test_gpus_per_node_reads_requests_then_limits() -> None:
    v = {"input": {}, "role": "leader", "node_count": 2}
    for resources, gpus in table("table.getGPUsPerNode"):
        ctx = context_of({**v, "input": {"component": {"resources": resources}}})
        assert ctx.gpus_per_node == gpus, resources


def _framework(result: str | None) -> str:
    return result or "noop"


def test_engine_detected_from_command_and_args() -> None:
    for (command, args), expected in table("table.detectBackendFrameworkFromArgs"):
        if expected == "ERROR":
            with pytest.raises(EngineChoiceError, match="more than one engine"):
                engines.detect_engine(command, args)
        else:
            assert _framework(engines.detect_engine(command, args)) == expected, args


def test_engine_of_a_service_detected_first_then_explicit() -> None:
    for case, expected in table("table.determineBackendFramework"):
        is_worker = case["componentType"] in ("worker", "prefill", "decode")
        call = (case.get("command") or [], case.get("args") or [])
        kwargs = {"explicit": case.get("explicit"), "is_worker": is_worker}
        if expected.startswith("ERROR"):
            message = re.escape(expected.removeprefix("ERROR: "))
            with pytest.raises(EngineChoiceError, match=message):
                engines.resolve_engine(*call, **kwargs)
        else:
            assert _framework(engines.resolve_engine(*call, **kwargs)) == expected, case
