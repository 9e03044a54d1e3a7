"""Run a container's shell script through a real ``sh`` with recorders in place of programs.

Each program a script can start (engines, launchers, tools) is a small ``sh`` script in a
"toolbox" directory that is the only entry on ``PATH``. A recorder writes its argv to file
descriptor 9 (opened by a two-line prelude that then unsets the log's path, so nothing extra
reaches the script's env) and exits 0;
``exec`` therefore still works. Pure text tools (``sed``, ``awk``, ``cut``...) are the real ones so
that host lists computed with ``$(echo ... | sed ...)`` come out as they would in the pod.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drivetrain.cmdline import is_bare_script

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
PYTHON = re.compile(r"^python(\d+(\.\d+)*)?$")
TIMEOUT_S = 10.0
RECORD_START = "\x1e"  # begins the first argv field of every record
ENV_MARK = "\x1d"  # separates a record's argv from the watched env that follows it
# Env that carries a leader address into a process without passing through argv (Dynamo's
# wait-for-leader init container reads LEADER_HOST; torch.distributed reads MASTER_ADDR).
WATCHED_ENV = ("LEADER_HOST", "MASTER_ADDR")

# Real programs: text in, text out, no side effects on the machine.
REAL_TOOLS = (
    "awk",
    "basename",
    "cut",
    "date",
    "dirname",
    "echo",
    "env",
    "expr",
    "false",
    "grep",
    "head",
    "printf",
    "seq",
    "sort",
    "tail",
    "test",
    "tr",
    "true",
    "uniq",
    "wc",
    "xargs",
    "[",
)

# Programs that only prepare a pod (files, keys, waiting). Recorded, not listed as processes.
HELPERS = frozenset(
    {
        "cat",
        "chmod",
        "chown",
        "cp",
        "curl",
        "dig",
        "getent",
        "host",
        "hostname",
        "id",
        "ln",
        "ls",
        "mkdir",
        "mv",
        "nc",
        "nproc",
        "nslookup",
        "nvidia-smi",
        "pip",
        "rm",
        "sed",
        "sleep",
        "ssh-keygen",
        "tee",
        "touch",
        "uv",
        "wget",
        "which",
        "whoami",
    }
)
ENGINES = (
    "python",
    "python3",
    *(f"python3.{m}" for m in range(8, 15)),
    "vllm",
    "trtllm-serve",
    "sglang",
    "ray",
    "sshd",
    "ssh",
    "torchrun",
    "deepspeed",
    "dynamo-run",
    "trtllm-bench",
)
# Programs that run the rest of their argv after recording themselves.
LAUNCHERS = ("trtllm-llmapi-launch", "nohup", "stdbuf", "numactl", "taskset", "timeout")

# The separators are written into the recorder as raw bytes: no `$(printf ...)` subshells, so a
# recorder costs one sh start and nothing more.
_RECORD = (
    f"printf '%s\\000' '{RECORD_START}'\"${{0##*/}}\" \"$@\" '{ENV_MARK}' "
    + " ".join(f'"${{{name}+{name}=${name}}}"' for name in WATCHED_ENV)
    + " >&9"
)

_SPECIAL = {
    "id": (
        'case "$1" in -u|-g) echo 0;; -un|-gn) echo root;; *) echo "uid=0(root) gid=0(root)";; esac'
    ),
    "hostname": 'echo "$HOSTNAME"',
    "whoami": "echo root",
    "nproc": "echo 8",
    "getent": 'shift; echo "10.244.0.1       $1"',
    "nslookup": 'echo "Name: $1"; echo "Address: 10.244.0.1"',
    "host": 'echo "$1 has address 10.244.0.1"',
    "dig": "echo 10.244.0.1",
    # stdin passes through, so pipes keep working; files are not read.
    "cat": '[ "$#" -eq 0 ] && exec "$REALCAT"; exit 0',
    # Real, so that `> $HOME/.ssh/config` finds its directory in the sandbox home; run as nobody
    # it cannot create anything outside world-writable places, and failures are ignored.
    "mkdir": '"$REALMKDIR" "$@" 2>/dev/null; exit 0',
    "tee": 'exec "$REALCAT"',
    # In-place edits are recorded, never done; stream edits are real.
    "sed": (
        'for a in "$@"; do case "$a" in -i*|--in-place*) exit 0;; esac; done; exec "$REALSED" "$@"'
    ),
    "mpirun": (
        'H=""; prev=""; for a in "$@"; do [ "$prev" = "-H" ] || [ "$prev" = "--host" ] && H="$a";'
        ' prev="$a"; done\n'
        'while [ "$#" -gt 0 ]; do case "$1" in bash|sh|*/bash|*/sh) break;; esac; shift; done\n'
        '[ "$#" -gt 0 ] || exit 0\n'
        'n=0; for h in $(echo "$H" | tr "," " "); do'
        ' OMPI_COMM_WORLD_RANK=$n OMPI_MCA_orte_host="$h" "$@" || exit $?; n=$((n+1)); done'
    ),
}
_LAUNCH = (
    'while [ "$#" -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done\n'
    '[ "${0##*/}" = timeout ] && shift\n'
    '[ "$#" -gt 0 ] && exec "$@"; exit 0'
)
# Prelude for every script: open the record log on fd 9 and forget where it is, and keep a
# missing directory from ending an `&&` chain in a simulation.
_LOG_VAR = "DRIVETRAIN_VERIFY_LOG"
_PRELUDE = (
    f'exec 9>>"${_LOG_VAR}"; unset {_LOG_VAR}\n'
    'cd() { command cd "$@" 2>/dev/null; return 0; }\n'
    'ulimit() { command ulimit "$@" 2>/dev/null; return 0; }\n'
)


@dataclass(frozen=True)
class ShellCall:
    """``<shell> [opts] -c SCRIPT [$0 [args...]]`` split into its parts."""

    shell: str
    options: tuple[str, ...]
    script: str
    rest: tuple[str, ...]


def split_shell(argv: Sequence[str]) -> ShellCall | None:
    """The shell call in ``argv``, or None when the program is not ``sh -c`` (or alike)."""
    if not argv or os.path.basename(argv[0]) not in SHELLS:
        return None
    options: list[str] = []
    for i, word in enumerate(argv[1:], start=1):
        if word.startswith("-") and len(word) > 1 and not word.startswith("--"):
            options.append(word)
            if "c" in word[1:]:
                if i + 1 >= len(argv):
                    return None
                return ShellCall(
                    os.path.basename(argv[0]), tuple(options), argv[i + 1], tuple(argv[i + 2 :])
                )
        elif word.startswith("--"):
            options.append(word)
        else:
            return None
    return None


@dataclass
class ShellRun:
    """What one script did: each recorded argv, in order, and how it ended."""

    records: list[list[str]] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)  # WATCHED_ENV per record, if set
    exit_code: int | None = None
    timed_out: bool = False
    stderr: str = ""


class Toolbox:
    """A directory of recorders and real tools; one per verify run, shared by every script."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="drivetrain-verify-")
        self.root = Path(self._tmp.name)
        self.bin = self.root / "bin"
        self.bin.mkdir()
        self._sh = shutil.which("sh") or "/bin/sh"
        self._bash = shutil.which("bash") or self._sh
        self._header = (
            f"#!{self._sh}\nREALCAT={shutil.which('cat') or '/bin/cat'}\n"
            f"REALSED={shutil.which('sed') or '/bin/sed'}\n"
            f"REALMKDIR={shutil.which('mkdir') or '/bin/mkdir'}\n"
        )
        for tool in REAL_TOOLS:
            real = shutil.which(tool)
            if real:
                (self.bin / tool).symlink_to(real)
        (self.bin / "sh").symlink_to(self._sh)
        (self.bin / "dash").symlink_to(self._sh)
        (self.bin / "bash").symlink_to(self._bash)
        for name in (*HELPERS, *ENGINES, *_SPECIAL):
            self._write(name, _SPECIAL.get(name, "exit 0"))
        for name in LAUNCHERS:
            self._write(name, _LAUNCH)
        os.chmod(self.root, 0o755)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Toolbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, name: str, body: str) -> None:
        path = self.bin / name
        if path.exists() or path.is_symlink():
            return
        path.write_text(f"{self._header}{_RECORD}\n{body}\n")
        path.chmod(0o755)

    def known(self, name: str) -> bool:
        return (self.bin / name).exists()

    def cover(self, script: str) -> None:
        """Give every word of ``script`` that could be a program a recorder."""
        for word in set(re.findall(r"(?<![\w$/.-])[A-Za-z_][\w.+-]*", script)):
            if len(word) < 64:
                self._write(word, "exit 0")

    def run(self, call: ShellCall, env: Mapping[str, str], timeout: float = TIMEOUT_S) -> ShellRun:
        """Run ``call`` with exactly ``env`` (PATH replaced by the toolbox) and collect records."""
        script = rewrite_absolute_programs(call.script, self)
        self.cover(script)
        shell = self._bash if call.shell in {"bash", "zsh", "ksh"} else self._sh
        options = _non_login(call.options)
        with tempfile.TemporaryDirectory(dir=self.root) as work:
            os.chmod(work, 0o777)
            log_path = Path(work) / "log"
            log_path.touch(mode=0o666)
            os.chmod(log_path, 0o666)
            # The runtime sets HOME (/root for a root image) when the pod does not; a writable
            # stand-in lets `> $HOME/...` work, and records show it as /root again.
            home = Path(work) / "root"
            home.mkdir(mode=0o777)
            os.chmod(home, 0o777)
            run_env = {"HOME": str(home), **env, "PATH": str(self.bin), _LOG_VAR: str(log_path)}
            nobody = _unprivileged()
            proc = subprocess.Popen(
                [shell, *options, _PRELUDE + script, *call.rest],
                cwd=work,
                env=run_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                user=nobody,
                group=nobody,
                extra_groups=[] if nobody is not None else None,
            )
            result = ShellRun()
            try:
                _, err = proc.communicate(timeout=timeout)
                result.exit_code = proc.returncode
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                _, err = proc.communicate()
                result.timed_out = True
            result.stderr = err.decode(errors="replace")[-2000:]
            for record in parse_log(log_path.read_bytes()):
                argv, env = split_record(record)
                result.records.append([arg.replace(str(home), "/root") for arg in argv])
                result.envs.append(env)
        return result


def _non_login(options: Sequence[str]) -> list[str]:
    """Drop login/interactive options: a login shell reads /etc/profile, which resets PATH to
    this machine's real programs."""
    kept = []
    for option in options:
        if option in {"--login", "-l", "-i"}:
            continue
        if not option.startswith("--"):
            option = "-" + option[1:].replace("l", "").replace("i", "")
        kept.append(option)
    return kept


def _unprivileged() -> int | None:
    # As root a simulated script could write anywhere on this machine; run it as nobody instead.
    return 65534 if os.geteuid() == 0 else None


def parse_log(data: bytes) -> list[list[str]]:
    """Records written by the recorders: NUL-separated fields, each record's first field
    starting with ``RECORD_START``."""
    records: list[list[str]] = []
    for raw in data.split(b"\0"):
        text = raw.decode(errors="replace")
        if text.startswith(RECORD_START):
            records.append([text[1:]])
        elif records:
            records[-1].append(text)
    # split() leaves one empty field after the final NUL
    if records and records[-1] and records[-1][-1] == "":
        records[-1].pop()
    return records


def split_record(fields: list[str]) -> tuple[list[str], dict[str, str]]:
    """A record's argv and the watched env written after ``ENV_MARK``."""
    if ENV_MARK not in fields:
        return fields, {}
    cut = len(fields) - 1 - fields[::-1].index(ENV_MARK)
    pairs = (f.split("=", 1) for f in fields[cut + 1 :] if "=" in f)
    return fields[:cut], {k: v for k, v in pairs}


_ABS_PROGRAM = re.compile(r"(?<![\w.$/}-])/(?:[\w.+-]+/)+([\w.+-]+)")


def rewrite_absolute_programs(script: str, toolbox: Toolbox) -> str:
    """``/usr/sbin/sshd`` → ``sshd`` (and alike) so that the recorder on PATH stands in for it."""

    def swap(match: re.Match[str]) -> str:
        base = match.group(1)
        if is_bare_script(base):
            # `/app/train.py` is a file of the image, not a program on PATH: keeping the path
            # keeps it apart from a bare `train.py`, which the checks report.
            return match.group(0)
        if toolbox.known(base) or PYTHON.match(base) or base in SHELLS:
            return base
        return match.group(0)

    return _ABS_PROGRAM.sub(swap, script)


def is_process(argv: Sequence[str]) -> bool:
    """Whether a recorded call is a process worth listing (not a helper such as ``mkdir``)."""
    return bool(argv) and argv[0] not in HELPERS
