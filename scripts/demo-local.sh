#!/usr/bin/env bash
# The engine end to end without the queue system: import Fashion-MNIST, train fmnist-tiny for a
# few minutes, evaluate the teacher with weighted k-NN. Results land under $DINOQ_DATA_DIR (.data).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
run=${DINOQ_DEMO_RUN:-demo-$(date +%Y%m%d%H%M%S)}
node apps/cli/dist/main.js import-fmnist
node apps/cli/dist/main.js train --preset fmnist-tiny --run "$run" --train-limit 6400 --steps "${DINOQ_DEMO_STEPS:-40}" --checkpoint-every 20
node apps/cli/dist/main.js knn --run "$run" --train-limit 10000 --test-limit 2000 --ks 10,20
echo "results: ${DINOQ_DATA_DIR:-.data}/runs/$run (run.json, metrics.jsonl, checkpoints/)"
