"""``drivetrain snapshot``: the in-pod checkpoint/restore agent (Dynamo's ``snapshotctl``).

It drives the target-containers protocol of docs/snapshot.md: which containers a checkpoint or
restore acts on (``targets``), the pod they are in (``manifest``), the sentinel files of each
container's control directory (``control``), the per-container status annotations
(``annotations``), the checkpoint/restore step itself, a pluggable command (``tools``), and the
two operations in order (``agent``).  Like the runtime it runs inside a pod, so it imports no
graph layer.
"""
