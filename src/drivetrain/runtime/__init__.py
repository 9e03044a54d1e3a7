"""drivetrain's runtime: discovery, the frontend, workers and engines (no graph API)."""
