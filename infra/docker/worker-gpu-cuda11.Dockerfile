# syntax=docker/dockerfile:1
# dinoq GPU worker for Ampere GPUs (compute capability 8.0 and 8.6) on the stock
# @tensorflow/tfjs-node-gpu, with nothing to build beyond this file. Hopper and Ada GPUs get
# worker-gpu.Dockerfile (CUDA 12, a libtensorflow built for them). Build from the repository root:
#   docker build -f infra/docker/worker-gpu-cuda11.Dockerfile -t dinoq/worker-gpu-cuda11 .
#
# Why CUDA 11.2: tfjs-node-gpu 4.22.0 (the last release) downloads libtensorflow 2.9.1, built against
# CUDA 11.2 and cuDNN 8.1; it dlopens libcudart.so.11.0 and libcudnn.so.8. On a CUDA 12 base those
# files do not exist: TensorFlow logs "Could not load dynamic library 'libcudart.so.11.0'" and quietly
# runs everything on the CPU. This image therefore carries the CUDA 11.2 runtime and cuDNN 8 itself;
# the host only provides the NVIDIA driver (any driver new enough for the GPU also runs CUDA 11.2
# binaries). That build has kernels up to sm_80, which Ampere's 8.6 runs as well; Hopper (sm_90) would
# JIT-compile every kernel from PTX, which is why Kubernetes schedules this image on Ampere nodes only.
# 11.2.2 is the last CUDA 11.2 image NVIDIA still publishes (the 11.2.0 and 11.2.1 tags are gone).

# Exact versions; scripts/pin-image-digests.sh adds the @sha256 digest each tag points at today.
ARG NODE_IMAGE=node:24.20.0-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

# ---- build: compile on the same Node image as the other services ----
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
# CPU build of libtensorflow (an optional dependency as well) is never downloaded into this image.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
RUN npm run build && npm prune --omit=dev
# Same version as @tensorflow/tfjs-core in the lockfile, so npm dedupes it and the native backend
# registers itself with the very tfjs-core instance the libraries import.
# `npm rebuild` runs the package's install script: libtensorflow-gpu is downloaded now, at build time,
# never when a pod starts (GPU nodes often have no route to storage.googleapis.com).
RUN --mount=type=cache,target=/root/.npm \
    npm install --no-save --omit=dev --ignore-scripts --no-audit --no-fund @tensorflow/tfjs-node-gpu@4.22.0 \
 && npm rebuild --foreground-scripts @tensorflow/tfjs-node-gpu

# ---- runtime: CUDA 11.2 + cuDNN 8 ----
FROM ${CUDA_IMAGE}
# The base image lists NVIDIA's CUDA apt repository, whose signing key was rotated after these images
# were built; nothing is needed from it, so it is dropped rather than allowed to break `apt-get update`.
RUN rm -f /etc/apt/sources.list.d/cuda*.list /etc/apt/sources.list.d/nvidia-ml*.list \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --create-home --shell /usr/sbin/nologin node \
 && install -d -o node -g node /var/cache/cuda
# Node: the official linux-x64 binary, taken from the official image the build stage ran on, so every
# image runs the same Node. It needs glibc >= 2.28; Ubuntu 20.04 has 2.31.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
# DINOQ_WORKER_QUEUES is left to the worker's default for its device class; docker-compose.yml and the
# Kubernetes manifests name the queues explicitly.
ENV NODE_ENV=production \
    DINOQ_BACKEND=tensorflow-gpu \
    DINOQ_DEVICE_CLASS=gpu \
    CUDA_CACHE_PATH=/var/cache/cuda \
    CUDA_CACHE_MAXSIZE=4294967296
WORKDIR /app
COPY --from=build /app /app
# Fails the build, rather than the first job, if the binding or libtensorflow did not land or cannot be
# linked here. No GPU is visible during the build; TensorFlow only loads the CUDA libraries lazily.
RUN node -e "require('@tensorflow/tfjs-node-gpu')"
USER node
# tini as PID 1 forwards SIGTERM to node (the worker then finishes or abandons its shard) and reaps the
# sandboxed job processes.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "apps/worker/dist/main.js"]
