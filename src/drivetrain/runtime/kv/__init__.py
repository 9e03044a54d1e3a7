"""KV-cache blocks shared by workers and the frontend: block hashes, the worker's prefix cache
and its events (docs/kv-routing.md)."""
