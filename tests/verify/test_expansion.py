"""The kubelet's $(VAR) rules, checked against the vectors transcribed from kubernetes'
expand_test.go, plus the controller env placement verify relies on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from drivetrain.verify import ControllerEnv, PodFacts, container_env, expand
from drivetrain.verify.expansion import expand_argv, service_link_env
from tests.paths import shared

POD = PodFacts(
    name="w-0-1", namespace="ns", ip="10.244.0.7", hostname="w-0-1", labels={"role": "worker"}
)


def _vectors() -> dict[str, Any]:
    return json.loads(shared("vectors", "kubelet-expansion-vectors.json").read_text())


def _single_cases() -> list[Any]:
    try:
        data = _vectors()["single_expand_cases"]
    except pytest.skip.Exception:
        return []
    return [
        pytest.param(case, contexts, id=f"{label}:{case['name']}")
        for label, contexts in (
            ("single", data["contexts"]),
            ("dual", data["contexts_dual_equivalent"]),
        )
        for case in data["cases"]
    ]


@pytest.mark.parametrize(("case", "contexts"), _single_cases())
def test_expand_matches_kubernetes_vector(
    case: dict[str, str], contexts: list[dict[str, str]]
) -> None:
    assert expand(case["input"], contexts) == case["expected"]


def test_every_single_expand_vector_is_exercised() -> None:
    data = _vectors()["single_expand_cases"]
    assert len(_single_cases()) == 2 * len(data["cases"]) > 0


def _env_cases() -> list[Any]:
    try:
        data = _vectors()
    except pytest.skip.Exception:
        return []
    cases = (
        data["sequential_env_cases"] + data["extra_kubelet_semantics_cases_not_from_expand_test"]
    )
    return [pytest.param(c, id=c["name"]) for c in cases]


@pytest.mark.parametrize("case", _env_cases())
def test_container_env_matches_kubelet_ordering_vector(case: dict[str, Any]) -> None:
    env = []
    for entry in case["env"]:
        if "valueFrom" in entry:  # the vector resolves it to a concrete value already
            env.append(
                {
                    "name": entry["name"],
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['v']"}},
                }
            )
        else:
            env.append(entry)
    resolved = case.get("resolved_env", {})
    pod = PodFacts(
        name="p",
        namespace="ns",
        ip="10.0.0.1",
        hostname="p",
        labels={"v": next(iter(resolved.values()), "")},
    )
    configmaps = {"cm": case.get("envFrom", {})}
    container = {
        "env": env,
        "envFrom": [{"configMapRef": {"name": "cm"}}] if "envFrom" in case else [],
        "args": case.get("args", []),
    }
    built = container_env(container, ControllerEnv(), pod, configmaps=configmaps)
    expected = case.get("expected") if isinstance(case.get("expected"), dict) else resolved
    assert {k: built.values[k] for k in expected} == expected
    if "expected_args" in case:
        assert expand_argv(container, built.values) == case["expected_args"]


def test_lws_env_is_prepended_so_user_env_can_reference_it() -> None:
    lws = ControllerEnv(
        entries=({"name": "LWS_LEADER_ADDRESS", "value": "g-0.g.ns"},), placement="prepend"
    )
    container = {"env": [{"name": "ADDR", "value": "$(LWS_LEADER_ADDRESS):29500"}]}
    assert container_env(container, lws, POD).values["ADDR"] == "g-0.g.ns:29500"


def test_grove_env_is_appended_so_user_env_cannot_reference_it_but_args_can() -> None:
    grove = ControllerEnv(
        entries=({"name": "GROVE_PCLQ_POD_INDEX", "value": "3"},), placement="append"
    )
    container = {
        "env": [{"name": "IDX", "value": "$(GROVE_PCLQ_POD_INDEX)"}],
        "args": ["--rank=$(GROVE_PCLQ_POD_INDEX)"],
    }
    env = container_env(container, grove, POD).values
    assert env["IDX"] == "$(GROVE_PCLQ_POD_INDEX)"
    assert expand_argv(container, env) == ["--rank=3"]


def test_controller_env_replaces_a_user_entry_of_the_same_name() -> None:
    lws = ControllerEnv(entries=({"name": "LWS_WORKER_INDEX", "value": "2"},), placement="prepend")
    container = {"env": [{"name": "LWS_WORKER_INDEX", "value": "0"}]}
    assert container_env(container, lws, POD).values["LWS_WORKER_INDEX"] == "2"


def test_field_refs_resolve_to_the_concrete_pod() -> None:
    container = {
        "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ROLE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['role']"}}},
        ]
    }
    env = container_env(container, ControllerEnv(), POD).values
    assert (env["IP"], env["NAME"], env["ROLE"]) == ("10.244.0.7", "w-0-1", "worker")


def test_secret_values_are_placeholders_without_a_dollar_and_secret_envfrom_is_opaque() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "hf-token"}}],
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    }
    built = container_env(container, ControllerEnv(), POD)
    assert built.values["TOKEN"] == "<from-secret:s/k>"
    assert built.opaque_sources == ["secret/hf-token"]


def test_service_links_give_host_and_port_variables() -> None:
    svc = {
        "metadata": {"name": "g-frontend"},
        "spec": {"ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]},
    }
    env = service_link_env([svc], {"g-frontend": "10.96.0.20"})
    assert env["G_FRONTEND_SERVICE_HOST"] == "10.96.0.20"
    assert env["G_FRONTEND_SERVICE_PORT_HTTP"] == "8000"
    assert env["G_FRONTEND_PORT_8000_TCP_ADDR"] == "10.96.0.20"
