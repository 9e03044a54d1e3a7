"""Free loopback TCP ports, for the servers a test starts."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice); the caller binds it soon after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports nothing listens on now, for a command that
    numbers its listeners from a base port (``drivetrain up --port`` gives its frontends port,
    port + 1, ...): a single free port says nothing of the next one."""
    for _ in range(100):
        base = free_port()
        if base + count - 1 > 65535:
            continue
        taken = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports found")
