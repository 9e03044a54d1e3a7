"""Dynamo 1.6.1's own frontend and mocker, finding each other through the emulated Kubernetes API.

The pods run as processes with ``DYN_DISCOVERY_BACKEND=kubernetes`` and the downward-API env of
their pod templates, authenticated as their ServiceAccount, with RBAC enforced and the
EndpointSlice controller played by the emulator (tests/dynamo_runtime/node.py,
tests/kube/emulator.py ``ClusterEmulator``).  What is proven here is written down in
docs/dynamo-on-kubernetes.md: the calls the runtime makes, the label it selects on, the rules it
needs and the env its pods need.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from openai import OpenAI

from tests.dynamo_runtime.children import (
    DISCOVERY_BACKEND_LABEL,
    DISCOVERY_ENABLED_LABEL,
    OPERATOR_DISCOVERY_RULES,
    Component,
    dynamo_children,
    dynamo_namespace,
    service_account_name,
)
from tests.dynamo_runtime.conftest import MODEL, NS
from tests.dynamo_runtime.node import LocalNode, RunningPod, wait_until
from tests.kube.emulator import Attributes, AuditEvent, rule_allows
from tests.paths import shared

pytestmark = pytest.mark.slow

GRAPH = "g"
COMPONENTS = (Component("Frontend", "frontend"), Component("decode", "worker"))
SA_USER = f"system:serviceaccount:{NS}:{service_account_name(GRAPH)}"
DWM = ("nvidia.com", "dynamoworkermetadatas")
SLICES = ("discovery.k8s.io", "endpointslices")

#: Every (API group, resource, verb) Dynamo 1.6.1 needs in pod mode, frontend and mocker from
#: start to serving and shutdown; each one, removed alone, stops the worker from being served.
RUNTIME_RULES = {
    (*SLICES, "list"),
    (*SLICES, "watch"),
    (*DWM, "list"),
    (*DWM, "watch"),
    (*DWM, "patch"),  # server-side apply of the pod's DynamoWorkerMetadata
    (*DWM, "create"),  # ... which creates it the first time
}
#: The only label selector the runtime puts on its EndpointSlice list and watch.
SLICE_SELECTOR = f"{DISCOVERY_ENABLED_LABEL}=true"
#: After the worker is registered and Ready the frontend lists it within the runtime's 500 ms
#: debounce; a frontend that has not listed it this long after is not going to.
NOT_SERVED_AFTER = 3.0


def listed_models(port: int) -> set[str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
            return {m["id"] for m in json.loads(r.read())["data"]}
    except OSError:
        return set()


def start(node: LocalNode, manifests: Sequence[dict[str, Any]]) -> tuple[RunningPod, RunningPod]:
    node.apply(manifests)
    node.run(manifests)
    frontend = next(p for p in node.pods.values() if p.component_type == "frontend")
    worker = next(p for p in node.pods.values() if p.component_type == "worker")
    return frontend, worker


def serve_chat(node: LocalNode, frontend: RunningPod) -> None:
    """Wait until the frontend lists the model (failing at once on a 401/403 to any pod), then
    answer a chat completion through it with the ``openai`` client."""
    port = frontend.local_port("http")

    def served_or_refused() -> str | AuditEvent | None:
        if MODEL in listed_models(port):
            return "served"
        return next((e for e in node.emulator.audit if e.code in (401, 403)), None)

    outcome = wait_until(served_or_refused, 60, "the frontend lists the mocker's model", node)
    assert outcome == "served", f"the API server refused a pod: {outcome}"
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=30)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}], max_tokens=8
    )
    assert reply.model == MODEL
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 8


def runtime_requests(node: LocalNode, user: str = SA_USER) -> list[AuditEvent]:
    return [e for e in node.emulator.audit if e.user == user]


def cr(node: LocalNode, pod: RunningPod) -> dict[str, Any] | None:
    return node.emulator.store.get((*DWM, NS, pod.name))


def edit(
    manifests: list[dict[str, Any]], kind: str, change: Callable[[dict[str, Any]], None]
) -> list[dict[str, Any]]:
    for obj in manifests:
        if obj["kind"] == kind:
            change(obj)
    return manifests


def rules_for(triples: set[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """PolicyRules granting exactly ``triples``."""
    by_resource: dict[tuple[str, str], list[str]] = {}
    for group, resource, verb in sorted(triples):
        by_resource.setdefault((group, resource), []).append(verb)
    return [{"apiGroups": [g], "resources": [r], "verbs": v} for (g, r), v in by_resource.items()]


def assert_not_served(node: LocalNode, frontend: RunningPod) -> None:
    time.sleep(NOT_SERVED_AFTER)  # a negative claim: give discovery its chance first
    assert MODEL not in listed_models(frontend.local_port("http"))


# ---------------------------------------------------------------------------------------------


def granted(manifests: Sequence[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    """The rules of every Role the manifests bind to ``user`` (a ServiceAccount)."""
    roles = {o["metadata"]["name"]: o for o in manifests if o["kind"] == "Role"}
    out: list[dict[str, Any]] = []
    for binding in (o for o in manifests if o["kind"] == "RoleBinding"):
        for subject in binding.get("subjects") or []:
            who = f"system:serviceaccount:{subject.get('namespace') or NS}:{subject['name']}"
            if subject["kind"] == "ServiceAccount" and who == user:
                out += roles.get(binding["roleRef"]["name"], {}).get("rules") or []
    return out


def assert_used_exactly(
    node: LocalNode,
    manifests: Sequence[dict[str, Any]],
    user: str,
    rules: set[tuple[str, str, str]],
) -> None:
    """The account used exactly ``rules`` (the emulator's audit log says), each one granted by
    the Role the manifests bind to it."""
    used = node.emulator.used[user]
    assert used == rules
    roles = granted(manifests, user)
    for group, resource, verb in used:
        wanted = Attributes(verb, group, resource, None, NS, None)
        assert any(rule_allows(rule, wanted) for rule in roles), (group, resource, verb)


def label_selectors(calls: list[AuditEvent], resource: tuple[str, str]) -> set[str]:
    """The label selectors of the calls on ``resource`` (API group, plural)."""
    return {
        urllib.parse.parse_qs(urllib.parse.urlsplit(e.path).query).get("labelSelector", [""])[0]
        for e in calls
        if (e.group, e.resource) == resource
    }


def operator_children() -> tuple[str, list[dict[str, Any]]]:
    return GRAPH, dynamo_children(GRAPH, NS, COMPONENTS)


def drivetrain_render() -> tuple[str, list[dict[str, Any]]]:
    """``drivetrain render -n ml`` of Dynamo's own mocker example (a Frontend and a worker)."""
    from drivetrain.cli.graph_cmds import render_file

    path = shared("dgd-examples", "examples__backends__mocker__deploy__agg.yaml")
    return "mocker-agg", render_file(path, NS, None)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(operator_children, id="dynamo-operator-children"),
        pytest.param(drivetrain_render, id="drivetrain-render"),
    ],
)
def test_dynamo_serves_through_kubernetes_discovery_using_exactly_this(
    node: LocalNode, source: Callable[[], tuple[str, list[dict[str, Any]]]]
) -> None:
    graph, manifests = source()
    frontend, worker = start(node, manifests)
    serve_chat(node, frontend)
    node.stop()  # graceful shutdown is part of the contract: what does it call?

    user = f"system:serviceaccount:{NS}:{service_account_name(graph)}"
    calls = runtime_requests(node, user)
    assert calls and all(e.code < 400 for e in calls), [e for e in calls if e.code >= 400]
    assert {e.pod for e in calls} == {frontend.name, worker.name}  # both pods talk to the API
    assert_used_exactly(node, manifests, user, RUNTIME_RULES)
    assert label_selectors(calls, SLICES) == {SLICE_SELECTOR}
    # The frontend only reads; the worker writes one CR, named after its pod, owned by it
    # (POD_NAME and POD_UID from the downward API), in its Dynamo namespace.
    assert {(e.resource, e.verb) for e in calls if e.pod == frontend.name} == {
        ("endpointslices", "list"),
        ("endpointslices", "watch"),
        ("dynamoworkermetadatas", "list"),
        ("dynamoworkermetadatas", "watch"),
    }
    record = cr(node, worker)
    assert record is not None and cr(node, frontend) is None
    pod = node.emulator.store[("", "pods", NS, worker.name)]
    (owner,) = record["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Pod",
        worker.name,
        pod["metadata"]["uid"],
    )
    assert owner.get("blockOwnerDeletion") is False  # so no pods/finalizers right is needed
    namespaces = {e["namespace"] for e in record["spec"]["data"]["endpoints"].values()}
    assert namespaces == {dynamo_namespace(NS, graph)}


def test_the_minimal_contract_is_enough(node: LocalNode) -> None:
    """Exactly RUNTIME_RULES, Services labelled only with the enabled label, pods without
    discovery labels: still served."""
    manifests = dynamo_children(GRAPH, NS, COMPONENTS, rules=rules_for(RUNTIME_RULES))
    edit(manifests, "Service", lambda s: s["metadata"]["labels"].pop(DISCOVERY_BACKEND_LABEL))
    for label in (DISCOVERY_BACKEND_LABEL, DISCOVERY_ENABLED_LABEL):
        edit(
            manifests,
            "Deployment",
            lambda d, k=label: d["spec"]["template"]["metadata"]["labels"].pop(k),
        )
    frontend, _ = start(node, manifests)
    serve_chat(node, frontend)


def without(resource: str, verb: str | None = None) -> list[dict[str, Any]]:
    """The operator's rules less the rule for ``resource`` (or only its ``verb``)."""
    out = []
    for rule in OPERATOR_DISCOVERY_RULES:
        if resource in rule["resources"]:
            if verb is None:
                continue
            rule = {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}
        out.append(rule)
    return out


@pytest.mark.parametrize(
    ("rules", "resource", "denied_verb"),
    [
        (without("endpointslices"), "endpointslices", "list"),
        (without("dynamoworkermetadatas"), "dynamoworkermetadatas", "list"),
        (without("dynamoworkermetadatas", "patch"), "dynamoworkermetadatas", "patch"),
    ],
    ids=["no-endpointslices-rule", "no-dynamoworkermetadatas-rule", "no-patch-verb"],
)
def test_without_one_rule_the_runtime_is_forbidden_and_nothing_is_served(
    node: LocalNode, rules: list[dict[str, Any]], resource: str, denied_verb: str
) -> None:
    frontend, worker = start(node, dynamo_children(GRAPH, NS, COMPONENTS, rules=rules))

    def denied() -> list[AuditEvent]:
        return [
            e
            for e in runtime_requests(node)
            if (e.code, e.resource, e.verb) == (403, resource, denied_verb)
        ]

    wait_until(denied, 30, f"a 403 on {denied_verb} {resource}", node)
    # The API server's Status reached the runtime as a Forbidden error (kube-rs parsed it).
    message = (
        f'cannot {denied_verb} resource "{resource}" in API group "{denied()[0].group}" '
        f'in the namespace "{NS}"'
    )
    wait_until(
        lambda: message in worker.log.read_text(errors="replace"), 30, "the error logged", node
    )
    if denied_verb == "patch":
        # The mocker cannot register its CR, rolls back and gives up (with exit code 0).
        wait_until(lambda: worker.process.poll() is not None, 30, "the mocker exits", node)
    if resource == "dynamoworkermetadatas":
        assert cr(node, worker) is None  # never registered
    assert_not_served(node, frontend)


def test_pods_without_the_discovery_service_account_are_forbidden(node: LocalNode) -> None:
    """Without the operator's ``serviceAccountName`` the pods run as "default", which may do
    nothing."""
    manifests = edit(
        dynamo_children(GRAPH, NS, COMPONENTS),
        "Deployment",
        lambda d: d["spec"]["template"]["spec"].pop("serviceAccountName"),
    )
    frontend, _ = start(node, manifests)
    default = f"system:serviceaccount:{NS}:default"
    wait_until(
        lambda: {e.pod for e in runtime_requests(node, default) if e.code == 403} == set(node.pods),
        30,
        "both pods forbidden",
        node,
    )
    assert not runtime_requests(node)  # nothing ran as the discovery account
    assert_not_served(node, frontend)


def test_a_worker_service_without_the_enabled_label_hides_the_worker(node: LocalNode) -> None:
    """No 403 here: the worker registers and is Ready, but its EndpointSlice is not selected."""
    manifests = edit(
        dynamo_children(GRAPH, NS, COMPONENTS),
        "Service",
        lambda s: s["metadata"]["labels"].pop(DISCOVERY_ENABLED_LABEL),
    )
    frontend, worker = start(node, manifests)
    wait_until(
        lambda: worker.ready and cr(node, worker), 60, "the worker Ready and registered", node
    )
    slice_labels = [
        s["metadata"]["labels"]
        for (g, p, _, _), s in list(node.emulator.store.items())
        if (g, p) == SLICES
    ]
    assert slice_labels and all(DISCOVERY_BACKEND_LABEL in labels for labels in slice_labels)
    assert_not_served(node, frontend)
    assert all(e.code < 400 for e in runtime_requests(node))


# --------------------------------------------------------------------------------------------- container mode

#: Container mode (``DYN_KUBE_DISCOVERY_MODE=container``): Pods instead of EndpointSlices, and
#: every process first deletes a stale CR of its own name, so ``delete`` is needed too.
CONTAINER_RULES = {
    ("", "pods", "list"),
    ("", "pods", "watch"),
    *((*DWM, verb) for verb in ("list", "watch", "patch", "create", "delete")),
}


def drivetrain_render_container_mode() -> tuple[str, list[dict[str, Any]]]:
    """The same render, with the DGD annotated for per-container discovery."""
    import yaml

    from drivetrain.api import load_text
    from drivetrain.render import render_graph

    path = shared("dgd-examples", "examples__backends__mocker__deploy__agg.yaml")
    doc = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    doc["metadata"]["annotations"] = {"nvidia.com/dynamo-kube-discovery-mode": "container"}
    (graph,) = load_text(yaml.safe_dump(doc)).graphs
    return graph.name, render_graph(graph, namespace=NS)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda: (GRAPH, dynamo_children(GRAPH, NS, COMPONENTS, mode="container")),
                     id="dynamo-operator-children"),
        pytest.param(drivetrain_render_container_mode, id="drivetrain-render"),
    ],
)  # fmt: skip
def test_container_mode_watches_labelled_pods_and_needs_delete(
    node: LocalNode, source: Callable[[], tuple[str, list[dict[str, Any]]]]
) -> None:
    graph, manifests = source()
    frontend, worker = start(node, manifests)
    serve_chat(node, frontend)
    node.stop()
    user = f"system:serviceaccount:{NS}:{service_account_name(graph)}"
    calls = runtime_requests(node, user)
    # A stale-CR delete of a CR that does not exist is answered 404; nothing else fails.
    assert all(e.code < 400 or (e.verb, e.code) == ("delete", 404) for e in calls)
    assert {(e.pod, e.name) for e in calls if e.verb == "delete"} == {
        (frontend.name, frontend.name),
        (worker.name, worker.name),
    }
    assert_used_exactly(node, manifests, user, CONTAINER_RULES)
    # The same single label, on the Pods this time.
    assert label_selectors(calls, ("", "pods")) == {SLICE_SELECTOR}
    assert cr(node, worker) is not None  # "main" keeps the pod's name for its CR


def test_container_mode_without_delete_cannot_start(node: LocalNode) -> None:
    frontend, worker = start(
        node,
        dynamo_children(
            GRAPH,
            NS,
            COMPONENTS,
            rules=without("dynamoworkermetadatas", "delete"),
            mode="container",
        ),
    )
    wait_until(
        lambda: worker.process.poll() is not None and frontend.process.poll() is not None,
        30,
        "both processes exit",
        node,
    )
    assert (worker.process.returncode, frontend.process.returncode) == (1, 1)
    assert "cannot start with stale discovery state" in worker.log.read_text(errors="replace")
    assert {
        (e.verb, e.code) for e in runtime_requests(node) if e.resource == "dynamoworkermetadatas"
    } >= {("delete", 403)}
