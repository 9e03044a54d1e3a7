"""The OpenAI-compatible HTTP frontend (aiohttp): routes, routing, request plane client."""
