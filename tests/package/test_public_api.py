"""The public Python API: the names ``drivetrain`` exports, loaded lazily, and the example in
docs/api.md run exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys

import drivetrain
from tests.paths import REPO


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_every_exported_name_resolves() -> None:
    assert set(drivetrain.__all__) == {"__version__", *drivetrain._API}
    for name in drivetrain.__all__:
        assert getattr(drivetrain, name) is not None, name
    assert set(drivetrain.__all__) <= set(dir(drivetrain))


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    result = python(
        "import sys, drivetrain\n"
        "heavy = [m for m in ('pydantic', 'aiohttp', 'lightkube', 'kopf', 'yaml', 'rich')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_an_unknown_name_is_an_attribute_error() -> None:
    result = python(
        "import drivetrain\ntry:\n    drivetrain.nope\nexcept AttributeError as e:\n    print(e)"
    )
    assert "has no attribute 'nope'" in result.stdout


def test_the_error_root_covers_the_public_errors() -> None:
    assert issubclass(drivetrain.InvalidGraph, drivetrain.DrivetrainError)
    assert issubclass(drivetrain.DistEnvError, drivetrain.DrivetrainError)


def test_the_docs_example_runs_as_written() -> None:
    text = (REPO / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/api.md has one Python example"
    result = python(blocks[0])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "rendered: ['ServiceAccount', 'Role', 'RoleBinding', 'Deployment', 'Deployment', 'Service']"
    )
    assert lines[1] == "distenv: job-0.job.ml 1"
    assert lines[2] == "served: hi"
