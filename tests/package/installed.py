"""drivetrain built as a wheel and installed into a fresh venv outside the source tree.

Building and installing take a few seconds, not a minute: the wheel is built without build
isolation from a copy of the sources, installed with pip (``--no-deps``) into a venv made
without pip, and the venv gets its dependencies as links to the distributions already
installed for the tests, restricted to the closure of what the *wheel's own metadata*
requires (its ``Requires-Dist`` without extras, then theirs).  A runtime import of a package
that is only a test extra (httpx, jsonschema...) therefore fails there as it would for a user;
only the download is saved.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.paths import REPO

SOURCES = ("pyproject.toml", "README.md", "src")


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    linked: tuple[str, ...]  # the distributions the venv borrows

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self) -> dict[str, str]:
        """The environment of a user of the venv: its bin first, nothing of the source tree."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env


def build_wheel(work: Path) -> Path:
    """The wheel of a copy of the sources (so the build writes nothing into the tree)."""
    src = work / "src-copy"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(
                path, src / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
            )
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    dist = work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = dist.glob("drivetrain-*.whl")
    return wheel


def _requirements(meta_text: str) -> list[Requirement]:
    message = email.message_from_string(meta_text)
    return [Requirement(r) for r in message.get_all("Requires-Dist") or []]


def _wanted(req: Requirement) -> bool:
    # Runtime requirements only: a marker that needs an extra is an optional dependency.
    env = {**default_environment(), "extra": ""}
    return req.marker is None or req.marker.evaluate(env)


def dependency_closure(wheel: Path) -> list[str]:
    """The distributions the wheel needs at run time, transitively (canonical names)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        todo = [r for r in _requirements(zf.read(name).decode()) if _wanted(r)]
    seen: dict[str, None] = {}
    while todo:
        req = todo.pop()
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen:
            continue
        seen[key] = None
        dist = metadata.distribution(req.name)
        todo += [r for r in _requirements(dist.read_text("METADATA") or "") if _wanted(r)]
    return list(seen)


def _link_distribution(name: str, site: Path) -> None:
    """Symlink a distribution's top-level entries (packages, modules, dist-info) into ``site``."""
    dist = metadata.distribution(name)
    base = Path(str(dist.locate_file("")))
    tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    for top in tops:
        source, target = base / top, site / top
        if source.exists() and not target.exists() and top != "__pycache__":
            target.symlink_to(source)


def install(work: Path) -> Installed:
    wheel = build_wheel(work)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    closure = dependency_closure(wheel)
    for name in closure:
        _link_distribution(name, Path(purelib))
    assert Path(purelib) != Path(sysconfig.get_paths()["purelib"])
    return Installed(venv, wheel, tuple(sorted(closure)))
