"""A fake container runtime for the snapshot agent's tests: processes and the control folder.

``workload``: the program in a target container.  It holds a token in memory (what a real
checkpoint must carry over), writes its PID into ``ready-for-snapshot`` once warm, saves its
memory into the images folder on SIGUSR1 (what ``criu dump`` does to a process), and exits
when ``snapshot-complete`` appears, as a checkpoint Job's workload does.

``checkpoint``: the agent's checkpoint step: SIGUSR1 to ``--pid``, then wait for the dump.

``restore``: the agent's restore step: start a new workload from the images (its token comes
from the dump, not from its arguments), detached, and print ``container_id=...``.  The restored
workload waits for ``restore-complete`` before it resumes, as a restored process is held until
the agent releases it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def workload(control: Path, token: str | None, resume_from: Path | None) -> None:
    state = {"token": token, "steps": 0}
    if resume_from is not None:
        state = json.loads((resume_from / "state.json").read_text())
        # Held until the agent says the restore is complete.
        while not (control / "restore-complete").exists():
            time.sleep(0.02)
        (control / "resumed").write_text(f"token={state['token']} pid={os.getpid()}\n")
        while not (control / "stop").exists():
            time.sleep(0.05)
        return

    def dump(signum: int, frame: object) -> None:
        images = Path((control / "dump-to").read_text().strip())
        partial = images / ".state.json"
        partial.write_text(json.dumps(state))
        os.replace(partial, images / "state.json")

    signal.signal(signal.SIGUSR1, dump)
    control.mkdir(parents=True, exist_ok=True)
    (control / "ready-for-snapshot").write_text(f"{os.getpid()}\n")
    while not (control / "snapshot-complete").exists():
        state["steps"] = int(state["steps"]) + 1
        time.sleep(0.02)
    (control / "source-saw-complete").write_text("yes\n")


def checkpoint(pid: int, images: Path, control: Path) -> int:
    (control / "dump-to").write_text(str(images))
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        print(f"no process {pid} to checkpoint", file=sys.stderr)
        return 1
    deadline = time.monotonic() + 20
    while not (images / "state.json").exists():
        if time.monotonic() > deadline:
            print("the process never dumped", file=sys.stderr)
            return 1
        time.sleep(0.02)
    return 0


def restore(images: Path, control: Path, container: str) -> int:
    if not (images / "state.json").exists():
        print(f"{images}: no dump to restore", file=sys.stderr)
        return 1
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "workload",
            "--control",
            str(control),
            "--resume-from",
            str(images),
        ],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (control / "restored.pid").write_text(f"{proc.pid}\n")
    print(f"container_id=fake://{container}/{proc.pid}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="op", required=True)
    w = sub.add_parser("workload")
    w.add_argument("--control", type=Path, required=True)
    w.add_argument("--token")
    w.add_argument("--resume-from", type=Path)
    c = sub.add_parser("checkpoint")
    c.add_argument("--pid", type=int, required=True)
    c.add_argument("--images", type=Path, required=True)
    c.add_argument("--control", type=Path, required=True)
    r = sub.add_parser("restore")
    r.add_argument("--images", type=Path, required=True)
    r.add_argument("--control", type=Path, required=True)
    r.add_argument("--container", required=True)
    args = parser.parse_args()
    if args.op == "workload":
        workload(args.control, args.token, args.resume_from)
        return 0
    if args.op == "checkpoint":
        return checkpoint(args.pid, args.images, args.control)
    return restore(args.images, args.control, args.container)


if __name__ == "__main__":
    sys.exit(main())
