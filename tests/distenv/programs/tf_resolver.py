"""What TensorFlow makes of TF_CONFIG: TFConfigClusterResolver's cluster spec and task, one
JSON line per environment.

With no argument: this process's own environment. With arguments: each is a file holding a
rank's environment as ``env -0`` printed it; this process takes that environment as its own
(``os.environ``, which the resolver reads at every call) and resolves again, so one
TensorFlow import serves every rank.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import tensorflow as tf


def resolve() -> str:
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return json.dumps(
        {
            "cluster": resolver.cluster_spec().as_dict(),
            "task_type": resolver.task_type,
            "task_id": resolver.task_id,
        }
    )


if len(sys.argv) == 1:
    print(resolve())
for path in sys.argv[1:]:
    env = dict(item.split("=", 1) for item in Path(path).read_text().split("\0") if item)
    os.environ.clear()
    os.environ.update(env)
    print(resolve())
