"""An RLRun's entrypoint: the script the driver runs, and how it reaches the driver (pure).

**The script** is the user's ``ray.job.entrypoint``, run by ``/bin/sh`` as Ray's job manager
runs an entrypoint (``shell=True``).  With ``ray.job.logFile`` its output also goes to that
file, through ``tee``: as a plain ``cmd | tee file`` the exit status would be tee's (0), since
the POSIX ``sh`` of the Ray images (dash) has no ``pipefail``, and a failed training run would
be reported as succeeded.  The wrapper therefore connects the two through a fifo and exits with
the program's own status.

**The transport.**  KubeRay's default submission (K8sJobMode) joins ``spec.entrypoint`` into a
``bash -c`` command line of its submitter pod (``ray job submit ... -- <entrypoint> ;``) and the
Ray CLI re-quotes what bash left with Windows rules (``subprocess.list2cmdline``) before the
driver's ``sh`` parses it again: a pipe, a ``$`` or a quote in a script would be taken apart on
the way.  So the script travels in the head container's env (``DRIVETRAIN_ENTRYPOINT``), and
``spec.entrypoint`` is a fixed command with no character either layer changes, which writes it
to a file and runs it with ``sh``: the same script then runs the same way under K8sJobMode,
HTTPMode and ``drivetrain up``.
"""

from __future__ import annotations

import shlex

from drivetrain import envnames

#: Where the driver's shell writes the script before running it (in the head pod).
SCRIPT_FILE = "/tmp/drivetrain-entrypoint.sh"


def entrypoint_script(entrypoint: str, log_file: str | None = None) -> str:
    """The script the driver runs: ``entrypoint`` itself, or with ``log_file`` a POSIX sh
    wrapper that copies its output to the file and exits with its status."""
    if not log_file:
        return entrypoint
    log = shlex.quote(log_file)
    program = shlex.quote(entrypoint)
    return f"""\
# drivetrain: the entrypoint's output also goes to {log}; its exit status is kept (sh has no
# pipefail, so `cmd | tee` would exit with tee's): the program writes into a fifo that tee reads.
dt_log={log}
mkdir -p "$(dirname "$dt_log")" || exit 1
dt_dir=$(mktemp -d) || exit 1
mkfifo "$dt_dir/out" || exit 1
tee -a "$dt_log" < "$dt_dir/out" &
dt_tee=$!
sh -c {program} > "$dt_dir/out" 2>&1
dt_status=$?
wait "$dt_tee"
rm -rf "$dt_dir"
exit "$dt_status"
"""


def submitted_entrypoint() -> str:
    """``spec.entrypoint`` of every rendered RayJob: run the script the head's env carries.

    Only letters, ``/``, ``.``, ``-``, ``_``, ``>``, ``&`` and spaces inside one single-quoted
    word: bash (K8sJobMode's submitter) hands it over as one argument, ``list2cmdline``
    double-quotes it, and the driver's sh finds nothing to expand in it.
    """
    script = f"printenv {envnames.ENTRYPOINT} > {SCRIPT_FILE} && exec sh {SCRIPT_FILE}"
    return f"sh -c '{script}'"
