"""An RLRun rendered: graphs as their custom resources, then the RayJob (suspended) or
RayCluster with the frontend's address in every Ray container; valid against KubeRay's CRDs."""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain.render.rlrun import RUN_GRAPH_LABEL, RUN_LABEL, render_run
from drivetrain.verify import verify_manifests
from tests.rl.conftest import loaded
from tests.schemas import schema_errors

URL = "http://{}-frontend.ml.svc.cluster.local:8000/v1"


def rendered(graphs: dict[str, str], mode: str = "rayjob", **kw: Any):
    run = loaded(graphs, mode)
    return render_run(run.run, run.graphs, namespace="ml", **kw)


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def ray_pods(ray: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ray["spec"].get("rayClusterSpec") or ray["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def test_graphs_come_first_as_their_custom_resource_then_the_suspended_rayjob() -> None:
    out = rendered({"policy": "serving"})
    kinds = [(o["kind"], o["metadata"]["name"]) for o in out.objects()]
    # The RL API's token Secret leads, as a placeholder the operator replaces (docs/rl.md).
    assert kinds == [
        ("Secret", "grpo-admin-token"),
        ("GraphDeployment", "serving"),
        ("RayJob", "grpo"),
    ]
    assert "stringData" not in out.secret and "data" not in out.secret
    graph = out.graphs["policy"]
    assert graph["metadata"]["namespace"] == "ml"
    assert graph["metadata"]["labels"] == {RUN_LABEL: "grpo", RUN_GRAPH_LABEL: "policy"}
    assert "ownerReferences" not in graph["metadata"], "the operator's, with live uids"
    assert out.ray["spec"]["suspend"] is True
    assert out.ray["spec"]["submissionMode"] == "K8sJobMode"
    assert out.ray["spec"]["runtimeEnvYAML"] == "env_vars:\n  A: '1'\n"


def test_every_ray_container_and_the_frontend_get_the_rl_api_token_and_its_url() -> None:
    out = rendered({"policy": "serving"})
    reference = {
        "name": "DRIVETRAIN_ADMIN_TOKEN",
        "valueFrom": {
            "secretKeyRef": {"name": "grpo-admin-token", "key": "token", "optional": True}
        },
    }
    (frontend,) = [
        s
        for s in out.graphs["policy"]["spec"]["services"].values()
        if s.get("componentType") == "frontend"
    ]
    assert reference in frontend["envs"]
    for pod in ray_pods(out.ray):
        for container in pod["spec"]["containers"]:
            assert reference in container["env"]
            assert env(container)["DRIVETRAIN_ADMIN_URL"] == (
                "http://serving-frontend.ml.svc.cluster.local:8002"
            )


def test_a_named_token_secret_is_used_and_no_placeholder_is_rendered() -> None:
    run = loaded({"policy": "serving"}, "rayjob")
    named = run.run.model_copy(
        update={"spec": run.run.spec.model_copy(update={"adminTokenSecret": "my-token"})}
    )
    out = render_run(named, run.graphs, namespace="ml")
    assert out.secret is None
    head = ray_pods(out.ray)[0]["spec"]["containers"][0]
    (token,) = [e for e in head["env"] if e["name"] == "DRIVETRAIN_ADMIN_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "my-token"


def test_every_ray_container_learns_the_frontend_of_a_single_graph() -> None:
    out = rendered({"policy": "serving"})
    url = URL.format("serving")
    pods = ray_pods(out.ray)
    submitter = out.ray["spec"]["submitterPodTemplate"]
    containers = [c for p in pods for c in p["spec"]["containers"]] + submitter["spec"][
        "containers"
    ]
    assert len(containers) == 3
    for c in containers:
        e = env(c)
        assert e["DRIVETRAIN_FRONTEND_URL"] == e["DRIVETRAIN_FRONTEND_URL_POLICY"] == url
    head, worker = (p["spec"]["containers"][0] for p in pods)
    assert env(head)["OPENAI_BASE_URL"] == "USER", "the user's own value wins"
    assert env(worker)["OPENAI_BASE_URL"] == url
    assert env(submitter["spec"]["containers"][0])["OPENAI_BASE_URL"] == url
    assert "DRIVETRAIN_ENTRYPOINT" in env(head) and "DRIVETRAIN_ENTRYPOINT" in env(worker)
    assert "DRIVETRAIN_ENTRYPOINT" not in env(submitter["spec"]["containers"][0])
    for p in pods:
        for c in p["spec"].get("initContainers", []):
            assert "env" not in c, "init containers run no training code"


def test_several_graphs_get_one_variable_each_and_no_default() -> None:
    out = rendered({"policy": "serving", "reward-model": "judge"})
    for pod in ray_pods(out.ray):
        e = env(pod["spec"]["containers"][0])
        assert e["DRIVETRAIN_FRONTEND_URL_POLICY"] == URL.format("serving")
        assert e["DRIVETRAIN_FRONTEND_URL_REWARD_MODEL"] == URL.format("judge")
        assert "DRIVETRAIN_FRONTEND_URL" not in e
        assert e.get("OPENAI_BASE_URL") in (None, "USER")


def test_image_secrets_and_service_account_fill_only_where_none() -> None:
    out = rendered({"policy": "serving"})
    head, worker = ray_pods(out.ray)
    assert head["spec"]["containers"][0]["image"] == "trainer:1"
    assert worker["spec"]["containers"][0]["image"] == "own:1"
    assert worker["spec"]["initContainers"][0]["image"] == "trainer:1"
    assert head["spec"]["serviceAccountName"] == "own-sa"
    assert worker["spec"]["serviceAccountName"] == "ray-sa"
    assert worker["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert out.ray["spec"]["submitterPodTemplate"]["spec"]["serviceAccountName"] == "ray-sa"
    graph = out.graphs["policy"]
    for svc in graph["spec"]["services"].values():
        assert "serviceAccountName" not in (svc.get("extraPodSpec") or {}), "never graph pods"


def test_raycluster_mode_renders_a_raycluster_with_the_same_env() -> None:
    out = rendered({"policy": "serving"}, mode="raycluster")
    assert (out.ray["kind"], out.ray["metadata"]["name"]) == ("RayCluster", "grpo")
    assert "suspend" not in out.ray["spec"]
    for pod in ray_pods(out.ray):
        e = env(pod["spec"]["containers"][0])
        assert e["DRIVETRAIN_FRONTEND_URL"] == URL.format("serving")
        assert "DRIVETRAIN_ENTRYPOINT" not in e


@pytest.mark.parametrize("mode", ["rayjob", "raycluster"])
def test_rendered_ray_objects_are_valid_against_kuberays_crds(mode: str) -> None:
    out = rendered({"policy": "serving", "judge": "judge"}, mode=mode, children=True)
    for obj in out.objects():
        if obj["kind"] != "GraphDeployment":
            assert schema_errors(obj) == [], obj["kind"]


def test_the_graphs_children_render_and_verify() -> None:
    out = rendered({"policy": "serving"}, children=True)
    children = out.children["policy"]
    assert {(o["kind"], o["metadata"]["name"]) for o in children} >= {
        ("Deployment", "serving-frontend"),
        ("Service", "serving-frontend"),
    }
    report = verify_manifests(children)
    assert report.ok, report.problems
