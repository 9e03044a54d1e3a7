"""The RL API's listeners under ``up`` (docs/rl.md): every local frontend gets a free admin port
(the cluster's fixed 8002 would collide between frontends on one machine), and an RLRun's
frontends share one generated token with its entrypoint.

A frontend without a token keeps its admin port closed, so a plain graph's frontends only get
the port: a token from the graph's env (or ``--env-file``) then opens it where nothing else
listens.
"""

from __future__ import annotations

import socket
from dataclasses import replace

from drivetrain import envnames
from drivetrain.cmdline import replace_flag
from drivetrain.local.plan import ProcessSpec

ADMIN_PORT_FLAG = "--admin-port"


def free_port(host: str) -> int:
    """A port nothing listens on now (the OS's choice; taken again by the frontend at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host if host not in ("0.0.0.0", "::") else "127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_admin_ports(
    specs: list[ProcessSpec], host: str, token: str | None = None
) -> tuple[list[ProcessSpec], dict[str, int]]:
    """The specs with a free ``--admin-port`` on every frontend (and the token in its env
    when given); and each frontend's admin port by service name, its first replica's."""
    out: list[ProcessSpec] = []
    ports: dict[str, int] = {}
    for spec in specs:
        if spec.port is None:
            out.append(spec)
            continue
        port = free_port(host)
        ports.setdefault(spec.service, port)
        env = {**spec.env, envnames.ADMIN_TOKEN: token} if token else spec.env
        argv = replace_flag(spec.argv, ADMIN_PORT_FLAG, str(port), add=True)
        out.append(replace(spec, argv=argv, env=env))
    return out, ports
