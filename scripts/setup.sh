#!/usr/bin/env bash
# Sets up a fresh Debian machine (run as root, Node 20 already installed): Debian packages,
# a Redis server when none answers, and the npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
# OpenBLAS for the optional native matmul addon (libs/native-blas); without it training uses wasm only.
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# Debian's Chromium, driven by playwright-core in the dashboard's end-to-end test.
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "setup: starting redis-server on 127.0.0.1:6379"
  # noeviction is what BullMQ requires; nothing is persisted (S3 is the source of truth).
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --maxmemory-policy noeviction --save '' --appendonly no
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f libs/native-blas/build/Release/dinoq_native_blas.node ]; then
  echo "setup: building the native BLAS addon"
  npm run install -w @dinoq/native-blas --silent || true
fi
