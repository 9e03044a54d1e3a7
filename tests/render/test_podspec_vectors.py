"""Dynamo's pod-assembly vectors (GenerateBasePodSpec, GeneratePodSpecForComponent, Grove and
LWS generation, the small tables), through ``render_graph`` on a one-service graph.

Deliberate differences asserted here: env keeps injected-then-written order (Dynamo sorts);
vLLM multinode defaults to mp; one LeaderWorkerSet per service; no worker-hash suffix; no
NATS/etcd operator env; drivetrain's own selector label.
"""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain.api import load_text
from drivetrain.render import render_graph
from drivetrain.render.deployers import GroveDeployer, LWSDeployer
from drivetrain.render.naming import resource_name
from drivetrain.render.pod import merge_env
from tests.paths import SHARED
from tests.render import vector_adapter as va

if not (SHARED / "vectors").exists():
    pytest.skip("../shared/vectors is not beside this clone", allow_module_level=True)


def _graph(name: str, services: dict[str, Any], envs: list[Any] | None = None, **spec: Any):
    import yaml

    doc = {
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": name},
        "spec": {"services": services, **({"envs": envs} if envs else {}), **spec},
    }
    (graph,) = load_text(yaml.safe_dump(doc)).graphs
    return graph


def _pod_spec(
    objects: list[dict[str, Any]], role: str, clique: str | None = None
) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            return obj["spec"]["template"]["spec"]
        if obj["kind"] == "LeaderWorkerSet":
            key = "leaderTemplate" if role == "leader" else "workerTemplate"
            return obj["spec"]["leaderWorkerTemplate"][key]["spec"]
        if obj["kind"] == "PodCliqueSet":
            for c in obj["spec"]["template"]["cliques"]:
                if c["name"] == clique:
                    return c["spec"]["podSpec"]
    raise AssertionError("no pod template")


def _main(spec: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in spec["containers"] if c["name"] == "main")


def _component(vector: dict[str, Any]) -> dict[str, Any]:
    comp = _with_image(vector["input"]["component"])
    comp.pop("dynamoNamespace", None)
    if vector.get("node_count", 1) > 1:
        comp["multinode"] = {"nodeCount": vector["node_count"]}
    return comp


def _with_image(component: dict[str, Any]) -> dict[str, Any]:
    """Go's unit tests leave the image out; the API server (and drivetrain) require one."""
    comp = dict(component)
    eps = dict(comp.get("extraPodSpec") or {})
    main = dict(eps.get("mainContainer") or {})
    main.setdefault("image", "example/dynamo:1")
    comp["extraPodSpec"] = {**eps, "mainContainer": main}
    return comp


BASE = [v for v in va.vectors("GenerateBasePodSpec")]


@pytest.mark.parametrize("vector", BASE, ids=[v["id"] for v in BASE])
def test_base_pod_spec(vector: dict[str, Any]) -> None:
    graph = _graph(
        vector.get("parent_dgd_name", "test-deployment"),
        {vector["service_name"]: _component(vector)},
    )
    spec = _pod_spec(render_graph(graph, namespace=vector.get("namespace", "default")), "main")
    main = _main(spec)
    expected = vector["expected"]
    if "pod_spec" in expected:
        (want,) = expected["pod_spec"]["containers"]
        env_names = [e["name"] for e in main["env"]]
        assert sorted(env_names) == [e["name"] for e in want["env"]]  # same set; Dynamo sorts
        assert env_names[-2:] == [
            "ANOTHER_CONTAINER_ENV",
            "ANOTHER_COMPONENTENV",
        ]  # written order, last
        for key in (
            "command",
            "args",
            "ports",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "volumeMounts",
        ):
            assert main[key] == want[key], key
        for key in ("restartPolicy", "terminationGracePeriodSeconds", "securityContext", "volumes"):
            assert spec[key] == expected["pod_spec"][key], key
    else:
        assert main["command"] == expected["containers[0].command"]
        assert main["args"] == expected["containers[0].args"]
        env = {e["name"]: e.get("value") for e in main["env"]}
        for k, v in expected["containers[0].env_contains"].items():
            assert env[k] == v


FOR_COMPONENT = va.vectors("GeneratePodSpecForComponent")


@pytest.mark.parametrize("vector", FOR_COMPONENT, ids=[v["id"] for v in FOR_COMPONENT])
def test_pod_spec_for_component(vector: dict[str, Any]) -> None:
    graph = _graph("test-deployment", {vector["service_name"]: _component(vector)})
    objects = render_graph(graph, namespace="default", multinode="grove")
    slug = vector["service_name"]
    clique = (
        slug
        if vector["role"] == "main"
        else f"{slug}-{'ldr' if vector['role'] == 'leader' else 'wkr'}"
    )
    main = _main(_pod_spec(objects, vector["role"], clique))
    joined = " ".join([*main.get("command", []), *main.get("args", [])])
    expected = vector["expected"]
    if "ray start" in " ".join(expected["joined_command_and_args_contains"]):
        # Deliberate difference: mp, not Ray, unless asked for.
        assert "--distributed-executor-backend mp" in joined and "ray start" not in joined
        return
    for part in expected["joined_command_and_args_contains"]:
        assert part in joined
    for part in expected["joined_command_and_args_not_contains"]:
        assert part not in joined
    if (
        vector["role"] == "main"
        and len(vector["input"]["component"]["extraPodSpec"]["mainContainer"]["args"]) > 1
    ):
        # Deliberate difference: an argv given as args under the default shell runs as exec form.
        assert main["command"] == expected["derived_exact_args"][:1]
        return
    assert main["command"] == expected["derived_exact_command"]
    assert main["args"] == [va.as_script(a) for a in expected["derived_exact_args"]]


GROVE = va.vectors("GenerateGrovePodCliqueSet")


@pytest.mark.parametrize("vector", GROVE, ids=[v["id"] for v in GROVE])
def test_grove_pod_clique_set(vector: dict[str, Any]) -> None:
    inp = vector["input"]
    graph = _graph(
        vector["parent_dgd_name"], {vector["service_name"]: inp["service"]}, inp.get("dgd_envs")
    )
    (pcs,) = [
        o
        for o in render_graph(graph, namespace=vector["namespace"], multinode="grove")
        if o["kind"] == "PodCliqueSet"
    ]
    expected = vector["expected"]
    template = pcs["spec"]["template"]
    (clique,) = [c for c in template["cliques"] if c["name"] == expected["clique_name"]]
    assert clique["spec"]["roleName"] == expected["roleName"]
    assert clique["spec"]["replicas"] == expected["replicas"]
    assert clique["spec"]["minAvailable"] == expected["minAvailable"]
    assert template["podCliqueScalingGroups"] == [expected["pcsg"]]
    assert (
        pcs["spec"]["replicas"] == 1
        and template["headlessServiceConfig"] == expected["pcs"]["headlessServiceConfig"]
    )
    main = _main(clique["spec"]["podSpec"])
    probes = any(p in main for p in ("livenessProbe", "readinessProbe", "startupProbe"))
    assert probes == expected["probes_present"]
    if vector["backend"] == "vllm":
        assert "--distributed-executor-backend mp" in " ".join(
            main["args"] + main.get("command", [])
        )
    else:
        assert main["command"] == expected["containers[0].command"]
        assert main["args"] == [va.as_script(a) for a in expected["containers[0].args"]]
    labels = clique["labels"]
    for key, value in expected["labels_include"].items():
        if key == "nvidia.com/selector":
            assert labels["drivetrain.dev/selector"] == value
        elif key != "nvidia.com/metrics-enabled":
            assert labels[key] == value
    env = {f"{e['name']}={e.get('value')}" for e in main["env"]}
    for entry in expected["env_contains_unordered"]:
        if not entry.startswith(
            ("NATS_SERVER", "ETCD_ENDPOINTS")
        ):  # operator config, not drivetrain's
            assert entry in env


LWS = va.vectors("DynamoComponentDeploymentReconciler.generateLeaderWorkerSet")


@pytest.mark.parametrize("vector", LWS, ids=[v["id"] for v in LWS])
def test_leader_worker_set(vector: dict[str, Any]) -> None:
    comp = dict(vector["input"]["component"])
    comp["extraPodSpec"] = dict(comp["extraPodSpec"])
    comp["extraPodSpec"]["containers"] = [
        {"name": "sidecar", **c} for c in comp["extraPodSpec"]["containers"]
    ]
    graph = _graph("test-lws", {"deploy": {**comp, "replicas": 1}}, None, backendFramework="vllm")
    (lws,) = [o for o in render_graph(graph, namespace="default") if o["kind"] == "LeaderWorkerSet"]
    expected = vector["expected"]
    assert lws["spec"]["startupPolicy"] == expected["lws"]["startupPolicy"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == expected["lws"]["size"]
    # Deliberate difference: one LeaderWorkerSet whose replicas are the groups.
    assert lws["spec"]["replicas"] == 1 and lws["metadata"]["name"] == "test-lws-deploy"
    role = vector["role"]
    key = "leaderTemplate" if role == "leader" else "workerTemplate"
    spec = lws["spec"]["leaderWorkerTemplate"][key]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["sidecar", "main"]
    assert spec["terminationGracePeriodSeconds"] == expected["pod"]["terminationGracePeriodSeconds"]
    assert spec["securityContext"] == expected["pod"]["securityContext"]
    main = _main(spec)
    assert main["image"] == "test-image:latest"
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    labels = lws["spec"]["leaderWorkerTemplate"][key]["metadata"]["labels"]
    assert labels["nvidia.com/label1"] == "label1"
    assert labels["drivetrain.dev/role"] == role


HOSTS = va.vectors("MultinodeDeployer.GetHostNames")


@pytest.mark.parametrize("vector", HOSTS, ids=[v["id"] for v in HOSTS])
def test_host_lists(vector: dict[str, Any]) -> None:
    from drivetrain.render.expr import Context

    dep = LWSDeployer() if vector["deployer"]["kind"] == "lws" else GroveDeployer()
    hosts = dep.host_names(vector["service_name"], vector["node_count"])
    want = vector["expected"]["hostnames"]
    # The leader renders for the kubelet; the rest for the shell (mpirun -H is always a script).
    rendered = [h.render(Context.SHELL) for h in hosts]
    assert rendered == [va.as_script(h) if not h.startswith("$(echo") else h for h in want]


TABLES = {v["function"]: v["expected"]["table"] for v in va._load() if v["id"].startswith("table.")}


def test_roles_expand_per_service_as_dynamo_does() -> None:
    for inp, want in TABLES["expandRolesForService"]:
        nodes, replicas = inp["nodes"], inp["replicas"]
        service: dict[str, Any] = {"componentType": "worker", "backendFramework": None}
        service.pop("backendFramework")
        if replicas is not None:
            service["replicas"] = replicas
        if nodes > 1:
            service["multinode"] = {"nodeCount": nodes}
        service["extraPodSpec"] = {
            "mainContainer": {"image": "s:1", "command": ["python3", "-m", "dynamo.sglang"]}
        }
        graph = _graph("g", {"test-service": service})
        (pcs,) = [o for o in render_graph(graph, multinode="grove") if o["kind"] == "PodCliqueSet"]
        got = [
            [
                c["name"],
                {
                    "test-service": "main",
                    "test-service-ldr": "leader",
                    "test-service-wkr": "worker",
                }[c["name"]],
                c["spec"]["replicas"],
            ]
            for c in pcs["spec"]["template"]["cliques"]
        ]
        if nodes > 1 and replicas is None:
            assert pcs["spec"]["template"]["podCliqueScalingGroups"][0]["replicas"] == 1
        assert got == want, inp


def test_resource_names_have_no_worker_hash() -> None:
    graph = _graph(
        "my-dgd",
        {s: {"componentType": "worker"} for s in ("prefill", "decode", "worker", "frontend")},
    )
    for (service, _hash), dynamo_name in TABLES["GetDCDResourceName"]:
        assert resource_name(graph, service) == dynamo_name.removesuffix("-abc12345")


def test_env_merge_later_wins_without_sorting() -> None:
    for (base, override), dynamo in TABLES["MergeEnvs"]:
        merged = merge_env(base, override)
        assert sorted(merged, key=lambda e: e["name"]) == dynamo
    assert [
        e["name"] for e in merge_env([{"name": "Z", "value": "1"}], [{"name": "A", "value": "2"}])
    ] == ["Z", "A"]


def test_trtllm_leader_clique_starts_after_its_workers() -> None:
    service = {
        "componentType": "worker",
        "multinode": {"nodeCount": 3},
        "extraPodSpec": {
            "mainContainer": {"image": "t:1", "command": ["python3", "-m", "dynamo.trtllm"]}
        },
    }
    (pcs,) = [
        o
        for o in render_graph(_graph("t", {"service": service}), multinode="grove")
        if o["kind"] == "PodCliqueSet"
    ]
    template = pcs["spec"]["template"]
    starts = {c["name"]: c["spec"].get("startsAfter") for c in template["cliques"]}
    assert starts == {"service-ldr": ["service-wkr"], "service-wkr": None}
    assert template["cliqueStartupType"] == "CliqueStartupTypeExplicit"
    row = TABLES["getCliqueStartupDependencies"][0]
    assert row[0]["role"] == "leader" and row[1] == row[0]["workers"]
