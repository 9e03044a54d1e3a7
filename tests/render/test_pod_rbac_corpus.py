"""Acceptance over Dynamo's corpus and examples/: every ServiceAccount a rendered pod runs as is
rendered too (the schemas of every rendered object are checked by test_dgd_examples.py)."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from drivetrain.api import InvalidGraph, load_file
from drivetrain.render import render_graph
from drivetrain.verify.controllers import enumerate_pods
from tests.paths import REPO, SHARED

FILES = sorted(
    [
        *glob.glob(str(SHARED / "dgd-examples" / "*.yaml")),
        *glob.glob(str(REPO / "examples" / "*.yaml")),
    ]
)


@pytest.mark.parametrize("multinode", ["lws", "grove"])
def test_every_service_account_a_pod_runs_as_is_rendered(multinode: str) -> None:
    checked = 0
    for path in FILES:
        try:
            graphs = load_file(path).graphs
            objects = [
                o for g in graphs for o in render_graph(g, namespace="team", multinode=multinode)
            ]
        except InvalidGraph:
            continue  # test_dgd_examples.py says why each of these does not render
        rendered = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
        for pod in enumerate_pods(objects):
            account = pod.spec.get("serviceAccountName")
            assert account is None or account in rendered, f"{Path(path).name}: {pod.workload}"
            checked += account is not None
    assert checked > 100  # Dynamo's corpus runs with Kubernetes discovery: nearly every pod
