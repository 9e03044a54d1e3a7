"""Shared RLRun texts for the RL tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from drivetrain.api.rlrun_loader import LoadedRun, load_runs_text

GRAPH = """\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {name: NAME}
spec:
  services:
    Frontend: {componentType: frontend}
    worker:
      componentType: worker
      extraPodSpec:
        mainContainer: {args: [worker, --engine, mocker, --model-name, m]}
"""

RAY_SPEC = """\
      spec:
        headGroupSpec:
          rayStartParams: {}
          template:
            spec:
              containers:
                - name: ray-head
                  env: [{name: OPENAI_BASE_URL, value: USER}]
              serviceAccountName: own-sa
        workerGroupSpecs:
          - groupName: w
            replicas: 1
            rayStartParams: {}
            template:
              spec:
                containers: [{name: ray-worker, image: own:1}]
                initContainers: [{name: wait, command: [sleep, "1"]}]
"""


def run_text(graphs: dict[str, str], mode: str = "rayjob", extra: str = "") -> str:
    entries = "".join(
        f"    {key}:\n      graph:\n{textwrap.indent(GRAPH.replace('NAME', name), '        ')}"
        for key, name in graphs.items()
    )
    job = (
        "    job:\n      entrypoint: python3 train.py\n      env: {A: 1}\n"
        if mode == "rayjob"
        else ""
    )
    return (
        "apiVersion: drivetrain.dev/v1alpha1\nkind: RLRun\nmetadata: {name: grpo}\nspec:\n"
        f"  image: trainer:1\n  imagePullSecrets: [regcred]\n  serviceAccount: ray-sa\n{extra}"
        f"  graphs:\n{entries}  ray:\n    mode: {mode}\n    cluster:\n{RAY_SPEC}{job}"
    )


def loaded(graphs: dict[str, str], mode: str = "rayjob", extra: str = "") -> LoadedRun:
    (run,) = load_runs_text(run_text(graphs, mode, extra), "run.yaml", Path.cwd()).runs
    return run
