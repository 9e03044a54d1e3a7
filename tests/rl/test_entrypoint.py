"""The RayJob's entrypoint: the user's script reaches the driver's sh intact through KubeRay's
submitter (bash, then the Ray CLI's ``list2cmdline``) or its HTTP mode, and its exit status
survives a ``tee`` to the log file under dash, which has no ``pipefail``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from drivetrain.render.entrypoint import entrypoint_script, submitted_entrypoint

DASH = shutil.which("dash")
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(DASH is None or BASH is None, reason="needs dash and bash")

#: Pipes, expansions and both kinds of quote: what a double parse would take apart.
SCRIPT = """\
echo "seed: $RL_SEED" | tr a-z A-Z
printf '%s\\n' 'single "double" $literal'
echo "to stderr" >&2
exit 3
"""
EXPECTED = 'SEED: 7\nsingle "double" $literal\nto stderr\n'


def fake_ray(tmp_path: Path) -> Path:
    """A `ray` on PATH doing what `ray job submit ... -- ENTRYPOINT...` does with its words:
    join them with ``subprocess.list2cmdline`` (Ray's job CLI) and run the result with
    ``shell=True`` (Ray's job manager), here under dash."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ray = bin_dir / "ray"
    ray.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys\n"
        "words = sys.argv[sys.argv.index('--') + 1:]\n"
        f"sys.exit(subprocess.run(subprocess.list2cmdline(words), shell=True, executable={DASH!r}).returncode)\n"
    )
    ray.chmod(ray.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def env_for(script: str, bin_dir: Path | None = None) -> dict[str, str]:
    path = f"{bin_dir}:{os.environ['PATH']}" if bin_dir else os.environ["PATH"]
    return {"PATH": path, "RL_SEED": "7", "DRIVETRAIN_ENTRYPOINT": script}


def run_k8s_job_mode(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """KubeRay's submitter: its command words joined with spaces, run by ``bash -ce``."""
    line = f"ray job submit --address http://head:8265 --submission-id x --no-wait -- {submitted_entrypoint()} ;"
    return subprocess.run(
        [BASH, "-ce", line],
        env=env_for(script, fake_ray(tmp_path)),
        capture_output=True,
        text=True,
        timeout=30,
    )


def run_http_mode(script: str) -> subprocess.CompletedProcess[str]:
    """HTTPMode: the entrypoint string straight to the job manager's shell."""
    return subprocess.run(
        [DASH, "-c", submitted_entrypoint()],
        env=env_for(script),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_script_survives_the_submitters_two_parses(tmp_path: Path) -> None:
    proc = run_k8s_job_mode(tmp_path, SCRIPT)
    assert proc.returncode == 3, proc.stderr
    assert (proc.stdout, proc.stderr) == (EXPECTED.replace("to stderr\n", ""), "to stderr\n")


def test_the_script_runs_the_same_in_http_mode() -> None:
    proc = run_http_mode(SCRIPT)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        3,
        EXPECTED.replace("to stderr\n", ""),
        "to stderr\n",
    )


def test_the_user_entrypoint_itself_would_not_survive_the_submitter(tmp_path: Path) -> None:
    """Why the script travels in the env: given to KubeRay as the entrypoint, the pipe splits
    in the submitter's bash and the quotes go in list2cmdline."""
    bin_dir = fake_ray(tmp_path)
    line = f"ray job submit --address x -- {SCRIPT.splitlines()[1]} ;"
    proc = subprocess.run(
        [BASH, "-ce", line], env=env_for("", bin_dir), capture_output=True, text=True, timeout=30
    )
    assert proc.stdout != 'single "double" $literal\n'


def test_a_naive_tee_loses_the_exit_status_under_dash(tmp_path: Path) -> None:
    proc = subprocess.run(
        [DASH, "-c", f"sh -c 'exit 3' | tee -a {tmp_path / 'log'}"], capture_output=True, timeout=30
    )
    assert proc.returncode == 0, "the reason for the fifo"


def test_the_log_file_wrapper_keeps_the_status_of_a_failing_program(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "driver.log"
    script = entrypoint_script(SCRIPT, str(log))
    proc = run_k8s_job_mode(tmp_path, script)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == EXPECTED, "stdout and stderr both reach the job log, in order"
    assert log.read_text() == EXPECTED, "and the file"


def test_the_log_file_wrapper_passes_success_and_appends(tmp_path: Path) -> None:
    log = tmp_path / "driver.log"
    log.write_text("earlier\n")
    proc = run_http_mode(entrypoint_script("echo fine", str(log)))
    assert (proc.returncode, proc.stdout) == (0, "fine\n")
    assert log.read_text() == "earlier\nfine\n"
    assert not [
        p for p in Path("/tmp").glob("tmp*") if (p / "out").exists() and p.stat().st_mtime < 0
    ]


def test_a_program_that_is_not_found_is_127_as_a_shell_says() -> None:
    assert run_http_mode("surely-not-a-program --x").returncode == 127
    assert run_http_mode(entrypoint_script("surely-not-a-program", "/dev/null")).returncode == 127
