"""The Kubernetes layer: connection, server-side apply of a graph's children, readiness.

Pure parts (``children``, ``readiness``, ``multinode``) take and return plain dicts; the
I/O parts (``client``, ``reconcile``) use lightkube's async or sync client.
"""
