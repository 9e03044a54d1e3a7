"""The shipped PodSpec schema and its walker: the file is what the trim script makes, and the
walker decides as the jsonschema library does, on every pod spec of the example corpus and on
mutants of them with one value of the wrong type or one unknown field."""

from __future__ import annotations

import copy
import glob
import json
import runpy
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from drivetrain.api import podspec
from drivetrain.api.validate import prune_nulls
from tests.paths import REPO, SHARED

EXAMPLES = sorted(glob.glob(str(SHARED / "dgd-examples" / "*.yaml"))) + sorted(
    glob.glob(str(REPO / "examples" / "*.yaml"))
)


def test_the_shipped_schema_is_the_trim_scripts_output() -> None:
    script = runpy.run_path(str(REPO / "scripts" / "trim-podspec-schema.py"))
    shipped = resources.files("drivetrain.api").joinpath("schemas/podspec.json").read_text()
    assert shipped == script["render"]()


def _pod_specs() -> Iterator[dict[str, Any]]:
    for path in EXAMPLES:
        try:
            with open(path) as f:
                docs = list(yaml.safe_load_all(f))
        except yaml.YAMLError:
            continue  # the benchmark templates are not YAML
        for doc in docs:
            services = ((doc or {}).get("spec") or {}).get("services") or {}
            for svc in services.values() if isinstance(services, dict) else []:
                eps = dict((svc or {}).get("extraPodSpec") or {})
                eps.pop("mainContainer", None)
                if eps:
                    yield eps


def _mutants(node: Any, limit: int) -> Iterator[Any]:
    """Copies of ``node`` with one leaf of another type, or one unknown key in a mapping."""
    paths: list[tuple[Any, ...]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, dict):
            paths.append((*path, "__unknown__"))
            for key, item in value.items():
                walk(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*path, i))
        else:
            paths.append(path)

    walk(node, ())
    for path in paths[:limit]:
        mutant = copy.deepcopy(node)
        target = mutant
        for part in path[:-1]:
            target = target[part]
        last = path[-1]
        if last == "__unknown__":
            target["surelyNotAField"] = 1
        else:
            old = target[last]
            target[last] = [old] if not isinstance(old, bool) else "yes"
        yield mutant


@pytest.fixture(scope="module")
def reference() -> jsonschema.Draft7Validator:
    defs = json.loads(
        resources.files("drivetrain.api").joinpath("schemas/podspec.json").read_text()
    )["definitions"]
    root = {k: v for k, v in defs[podspec.POD_SPEC].items() if k != "required"}
    schema = {**root, "$defs": defs}
    return jsonschema.Draft7Validator(schema)


def test_the_walker_agrees_with_jsonschema(reference: jsonschema.Draft7Validator) -> None:
    samples = list(_pod_specs())
    assert len(samples) > 20, "the corpus has pod specs to compare on"
    compared = 0
    for sample in samples:
        for raw in [sample, *_mutants(sample, limit=40)]:
            candidate = prune_nulls(raw)  # as validate does first, and the API server
            ours = not podspec.check(candidate, podspec.POD_SPEC, "", partial=True)
            theirs = reference.is_valid(candidate)
            assert ours == theirs, (
                candidate,
                podspec.check(candidate, podspec.POD_SPEC, "", partial=True),
            )
            compared += 1
    assert compared > 200
