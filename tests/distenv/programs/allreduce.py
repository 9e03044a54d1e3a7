"""One rank of the torch rendezvous test: join via env:// and all-reduce (rank + 1).

Prints ``<rank> <world size> <sum>``. The join timeout comes from DISTENV_TEST_TIMEOUT
(seconds), so a missing rank makes every started rank fail instead of hanging.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist


def main() -> int:
    timeout = timedelta(seconds=float(os.environ["DISTENV_TEST_TIMEOUT"]))
    try:
        dist.init_process_group("gloo", timeout=timeout)
    except Exception as exc:  # any failure: the test reads this one line
        print(f"rendezvous failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 3
    value = torch.tensor([dist.get_rank() + 1], dtype=torch.int64)
    dist.all_reduce(value)
    print(dist.get_rank(), dist.get_world_size(), int(value.item()))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
