"""The request plane: persistent multiplexed TCP connections between frontend and workers.

Frames are a 4-byte big-endian length followed by an orjson array ``[kind, stream_id, payload]``.
One connection carries many requests (one stream id each); writes made during one event-loop
iteration are coalesced into a single ``transport.write`` so a fast engine costs one syscall per
batch of tokens, not one per token.  See docs/runtime.md ("Request plane") for the why.
"""

from drivetrain.runtime.transport.client import RequestPlaneClient, StreamFailed
from drivetrain.runtime.transport.server import RequestPlaneServer

__all__ = ["RequestPlaneClient", "RequestPlaneServer", "StreamFailed"]
