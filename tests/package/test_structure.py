"""The structure docs/architecture.md promises, checked: the module index is the code's, every
exception has the one root, one spelling of the deployer, comments cite the repository only."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import runpy

import drivetrain
from drivetrain.errors import DrivetrainError
from tests.paths import REPO

SRC = REPO / "src" / "drivetrain"


def test_the_module_index_in_architecture_md_is_the_code() -> None:
    script = runpy.run_path(str(REPO / "scripts" / "module-index.py"))
    doc = (REPO / "docs" / "architecture.md").read_text()
    assert doc == script["with_index"](doc), "run scripts/module-index.py --write"


def _modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(drivetrain.__path__, prefix="drivetrain.")]


def test_every_exception_the_package_defines_derives_from_the_root() -> None:
    orphans = []
    count = 0
    for name in _modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                count += 1
                if not issubclass(cls, DrivetrainError):
                    orphans.append(f"{name}.{cls.__name__}")
    assert not orphans
    assert count >= 19


def test_render_and_runtime_engine_errors_do_not_share_a_name() -> None:
    from drivetrain.render import engines
    from drivetrain.runtime.engines import base

    assert not hasattr(engines, "EngineError")
    assert issubclass(engines.EngineChoiceError, DrivetrainError)
    assert issubclass(base.EngineError, DrivetrainError)


def test_the_deployer_is_spelled_once() -> None:
    spellings = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if re.search(r"Literal\[\s*\"lws\",\s*\"grove\"", text) or re.search(
            r"^\s+lws = \"lws\"", text, flags=re.M
        ):
            spellings.append(str(path.relative_to(SRC)))
    assert spellings == ["api/enums.py"]


def test_comments_cite_repository_docs_only() -> None:
    outside = re.compile(r"reference §|issue \d+ §|§\d")
    hits = [
        f"{path.relative_to(REPO)}:{n}"
        for root in ("src", "tests", "benchmarks", "scripts")
        for path in (REPO / root).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line) and "outside = re.compile" not in line
    ]
    assert not hits
