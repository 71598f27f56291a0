# syntax=docker/dockerfile:1
# dinoq CPU worker (apps/worker) on native TensorFlow (@tensorflow/tfjs-node, libtensorflow 2.9.1 CPU),
# which uses every core, unlike the single-threaded wasm backend. Build from the repository root:
#   docker build -f infra/docker/worker-cpu.Dockerfile -t dinoq/worker-cpu .

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build ----
FROM ${NODE_IMAGE} AS build
# Only needed if the prebuilt tfjs binding cannot be downloaded and node-pre-gyp compiles it instead.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig*.json ./
COPY libs/ libs/
COPY apps/ apps/
# Install scripts are skipped here and run below for the one package this image needs, so the
# GPU build of libtensorflow (an optional dependency as well) is never downloaded into a CPU image.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
RUN npm run build && npm prune --omit=dev
# Same version as @tensorflow/tfjs-core in the lockfile, so npm dedupes it and the native backend
# registers itself with the very tfjs-core instance the libraries import.
# `npm rebuild` runs the package's install script: libtensorflow is downloaded now, at build time,
# never when a pod starts.
RUN --mount=type=cache,target=/root/.npm \
    npm install --no-save --omit=dev --ignore-scripts --no-audit --no-fund @tensorflow/tfjs-node@4.22.0 \
 && npm rebuild --foreground-scripts @tensorflow/tfjs-node

# ---- runtime ----
FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
# DINOQ_WORKER_QUEUES is left to the worker's default for its device class; docker-compose.yml and the
# Kubernetes manifests name the queues explicitly.
ENV NODE_ENV=production \
    DINOQ_BACKEND=tensorflow \
    DINOQ_DEVICE_CLASS=cpu
WORKDIR /app
COPY --from=build /app /app
# Fails the build, rather than the first job, if the native binding or libtensorflow did not land.
RUN node -e "require('@tensorflow/tfjs-node')"
USER node
# tini as PID 1 forwards SIGTERM to node (the worker then finishes or abandons its job) and reaps the
# sandboxed job processes.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "apps/worker/dist/main.js"]
