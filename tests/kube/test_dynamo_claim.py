"""DynamoGraphDeployments are reconciled only by an operator started with ``--claim-dynamo``,
so drivetrain and Dynamo's own operator never fight over the same objects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from drivetrain.kube.resources import DynamoGraphDeploymentResource
from tests.kube.conftest import NS, Cluster, OperatorThread, quiet
from tests.kube.test_operator_scenarios import AGG
from tests.paths import shared
from tests.waiting import eventually

DGD = AGG.replace("drivetrain.dev/v1alpha1", "nvidia.com/v1alpha1").replace(
    "kind: GraphDeployment", "kind: DynamoGraphDeployment"
)


@pytest.fixture
def with_dgd(cluster: Cluster) -> Cluster:
    cluster.install_crd(shared("crds", "dynamo", "nvidia.com_dynamographdeployments.yaml"))
    return cluster


def create_dgd(cluster: Cluster) -> None:
    obj = yaml.safe_load(DGD)
    obj["metadata"]["namespace"] = NS
    cluster.client.create(DynamoGraphDeploymentResource(obj))


def dgd_status(cluster: Cluster) -> dict | None:
    return cluster.client.get(DynamoGraphDeploymentResource, "chat").to_dict().get("status")


@pytest.fixture
def claiming_operator() -> Iterator[OperatorThread]:
    op = OperatorThread(claim_dynamo=True)
    op.start()
    yield op
    op.stop()


def test_a_claiming_operator_reconciles_dynamo_graphs(with_dgd: Cluster, claiming_operator) -> None:
    create_dgd(with_dgd)
    # Dynamo's Kubernetes discovery: the ServiceAccount, Role and RoleBinding, the two
    # Deployments, and a Service per component.
    children = eventually(lambda: len(with_dgd.children("chat")) == 7 and with_dgd.children("chat"))
    assert ("Service", "chat-worker") in children
    assert ("ServiceAccount", "chat-k8s-service-discovery") in children
    (ref,) = children["Deployment", "chat-worker"]["metadata"]["ownerReferences"]
    assert ref["kind"] == "DynamoGraphDeployment"
    eventually(lambda: (dgd_status(with_dgd) or {}).get("state") == "pending")


def test_without_the_flag_dynamo_graphs_are_left_alone(with_dgd: Cluster, operator) -> None:
    create_dgd(with_dgd)
    # A GraphDeployment created after it is reconciled: the operator is at work.
    with_dgd.create_graph(AGG.replace("name: chat", "name: other"))
    eventually(lambda: (with_dgd.graph("other").get("status") or {}).get("state"))
    quiet(with_dgd)
    assert with_dgd.children("chat") == {}
    assert dgd_status(with_dgd) is None
