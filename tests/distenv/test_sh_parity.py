"""The POSIX script and the Python package decide the same on every case: the same
environment for the command, or both refuse (exit 1, one line naming the variable)."""

from __future__ import annotations

import pytest

from drivetrain.distenv import DistEnvError, derive, export_lines
from tests.distenv.cases import BAD_CASES, EXTRA_CASES, VECTORS_FILE, lws_env
from tests.distenv.runners import python_outcome, sh_outcome, sh_print
from tests.paths import SHARED


def _vector_cases() -> list[tuple[str, dict[str, str]]]:
    import json

    if not VECTORS_FILE.exists():
        return []
    out = []
    for v in json.loads(VECTORS_FILE.read_text()):
        if v["system"].startswith("backendai-setup_dist_environ") and "@" not in v["system"]:
            out.append((v["id"], v["given"]))
        elif v["system"] == "leaderworkerset":
            out.append((v["id"], lws_env(v)))
    return out


ALL = _vector_cases() + EXTRA_CASES


def test_vectors_are_part_of_the_parity_set_when_shared_is_present() -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not here (../shared is only beside the developers' clones)")
    assert len(ALL) > len(EXTRA_CASES) + 10


@pytest.mark.parametrize(("case_id", "given"), ALL, ids=[c[0] for c in ALL])
def test_sh_and_python_give_the_same_environment(case_id: str, given: dict[str, str]) -> None:
    assert sh_outcome(given) == python_outcome(given)


@pytest.mark.parametrize(("case_id", "given", "names"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_both_refuse_malformed_input_naming_it(case_id: str, given: dict[str, str], names: str):
    py, sh = python_outcome(given), sh_outcome(given)
    assert py.env is None and sh.env is None
    assert py.error is not None and names in py.error
    assert sh.error is not None and names in sh.error


@pytest.mark.parametrize(("case_id", "given"), ALL, ids=[c[0] for c in ALL])
def test_print_output_is_byte_identical(case_id: str, given: dict[str, str]) -> None:
    proc = sh_print(given)
    try:
        expected = export_lines(derive(given))
    except DistEnvError:
        assert (proc.returncode, proc.stdout) == (1, "")
        return
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected
