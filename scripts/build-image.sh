#!/usr/bin/env bash
# `make image`: build the Dockerfile as drivetrain:<version> with whichever container engine
# actually runs here (docker, then podman). A client without an engine behind it (this
# project's development machines have only the docker client) is not enough: the build is
# skipped with the reason, and the script exits 0 so that `make image` can run anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
TAG="drivetrain:${VERSION}"
for engine in docker podman; do
  if ! command -v "$engine" >/dev/null 2>&1; then
    echo "image: $engine: not installed"
    continue
  fi
  if ! reason=$("$engine" info 2>&1 >/dev/null); then
    echo "image: $engine: installed, but no engine answers ($(printf '%s' "$reason" | tail -n 1))"
    continue
  fi
  exec "$engine" build -t "$TAG" .
done
echo "image: skipped: no docker or podman engine runs on this machine; build $TAG where one does"
