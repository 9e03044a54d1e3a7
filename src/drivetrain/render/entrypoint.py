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
the way.  So the script travels in the Ray containers' env (``DRIVETRAIN_ENTRYPOINT``), and
``spec.entrypoint`` is a fixed command that survives both layers unchanged: Python (which every
Ray image has) replaces itself with ``sh -c "$DRIVETRAIN_ENTRYPOINT"``.  The same script then
runs the same way under K8sJobMode, HTTPMode and ``drivetrain up``, with no file to write and
the driver's stdin left alone.
"""

from __future__ import annotations

import shlex

from drivetrain import envnames


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
    """``spec.entrypoint`` of every rendered RayJob: run the script the Ray containers' env
    carries.

    ``python3 -c '<code>'``, the code free of ``$``, backquotes, backslashes and single quotes:
    bash (K8sJobMode's submitter) hands the code over as one argument, ``list2cmdline`` wraps
    it in double quotes with its ``"`` escaped, and the driver's sh, inside double quotes, finds
    nothing to expand and only those escapes to undo.
    """
    code = 'import os; os.execvp("sh", ["sh", "-c", os.environ["' + envnames.ENTRYPOINT + '"]])'
    return f"python3 -c '{code}'"
