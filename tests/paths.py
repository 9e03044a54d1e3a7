"""Where the repository and ../shared are, for tests that read shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def shared(*parts: str) -> Path:
    """A path under ../shared, or skip the test when this clone has none beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared is only beside the developers' clones)")
    return path
