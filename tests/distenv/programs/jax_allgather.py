"""One JAX process of the rendezvous test: initialise, then gather every process's index.

``init_jax`` (argv[1] == "init_jax") is drivetrain's call; "env" is what an image without
drivetrain does with the variables distenv.sh exported. Prints the gathered indices as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
from jax.experimental import multihost_utils

TIMEOUT_S = int(os.environ["DISTENV_TEST_TIMEOUT"])

if sys.argv[1] == "init_jax":
    from drivetrain.distenv import init_jax

    init_jax(initialization_timeout=TIMEOUT_S)
else:
    jax.distributed.initialize(
        os.environ["JAX_COORDINATOR_ADDRESS"],
        int(os.environ["JAX_NUM_PROCESSES"]),
        int(os.environ["JAX_PROCESS_ID"]),
        initialization_timeout=TIMEOUT_S,
    )
gathered = multihost_utils.process_allgather(np.array(jax.process_index()))
print(
    json.dumps(
        {"index": jax.process_index(), "count": jax.process_count(), "gathered": gathered.tolist()}
    )
)
jax.distributed.shutdown()
