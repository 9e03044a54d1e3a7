"""Helpers for tests that run real processes: specs for small Python children, /proc checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from drivetrain.local.plan import ProcessSpec


def python_spec(code: str, name: str = "svc", replica: int = 0) -> ProcessSpec:
    return ProcessSpec(
        service=name,
        replica=replica,
        component_type="worker",
        argv=[sys.executable, "-c", code],
        env={},
        cwd=str(Path.cwd()),
    )


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if alive(p)}
