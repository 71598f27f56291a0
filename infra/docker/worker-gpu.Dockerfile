# syntax=docker/dockerfile:1
# dinoq GPU worker for current NVIDIA GPUs: CUDA 12 and cuDNN 9, with a libtensorflow built for
# compute capabilities 8.0, 8.6, 8.9 and 9.0 (Ampere, Ada, Hopper), so no kernel is JIT-compiled from
# PTX at start. The stock @tensorflow/tfjs-node-gpu 4.22.0 downloads libtensorflow 2.9.1 (CUDA 11.2,
# kernels up to sm_80); this image gives its installer another libtensorflow instead, through the
# package's scripts/custom-binary.json (`tf-lib`), and compiles the Node binding against it.
#
# Build from the repository root, with the URL of a libtensorflow tarball built as infra/README.md
# ("Building libtensorflow for CUDA 12") describes:
#   docker build -f infra/docker/worker-gpu.Dockerfile \
#     --build-arg LIBTENSORFLOW_URL=https://artifacts.example.com/libtensorflow-gpu-sm80-sm90.tar.gz \
#     -t dinoq/worker-gpu .
# The tfjs installer fetches it with a plain HTTPS GET (no redirects, no query string): the URL must be
# https:// and end in .tar.gz.

# Exact versions; scripts/pin-image-digests.sh adds the @sha256 digest each tag points at today.
ARG NODE_IMAGE=node:24.20.0-bookworm-slim
# CUDA 12.8 runtime + cuDNN 9.8. The libtensorflow must be built for CUDA 12.x <= 12.8 and cuDNN 9.y
# <= 9.8: TensorFlow refuses a cuDNN older than the one it was compiled with.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# ---- node: the official Node binary, headers and npm, copied into the CUDA-based stages ----
FROM ${NODE_IMAGE} AS node

# ---- build: compile the workspaces on the same Node image as the other services ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig*.json ./
COPY libs/ libs/
COPY apps/ apps/
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
RUN npm run build && npm prune --omit=dev

# ---- tfjs: the binding, compiled on the runtime's own OS (Ubuntu 22.04) against the custom library ----
FROM ${CUDA_IMAGE} AS tfjs
ARG LIBTENSORFLOW_URL
RUN case "${LIBTENSORFLOW_URL}" in \
      https://*.tar.gz) ;; \
      *) echo "LIBTENSORFLOW_URL must be an https:// URL of a libtensorflow .tar.gz (got '${LIBTENSORFLOW_URL}'); see infra/README.md" >&2; exit 1 ;; \
    esac
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/include/node /usr/local/include/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /app
COPY --from=build /app /app
# Same version as @tensorflow/tfjs-core in the lockfile, so npm dedupes it and the native backend
# registers itself with the very tfjs-core instance the libraries import. With a `tf-lib` and no
# prebuilt addon, the install script downloads the library and builds the binding from source;
# npm_config_nodedir points node-gyp at the copied headers, so nothing else is downloaded.
RUN --mount=type=cache,target=/root/.npm \
    npm install --no-save --omit=dev --ignore-scripts --no-audit --no-fund @tensorflow/tfjs-node-gpu@4.22.0 \
 && printf '{"tf-lib": "%s"}\n' "${LIBTENSORFLOW_URL}" \
      > node_modules/@tensorflow/tfjs-node-gpu/scripts/custom-binary.json \
 && npm_config_nodedir=/usr/local npm rebuild --foreground-scripts @tensorflow/tfjs-node-gpu

# ---- runtime: CUDA 12 + cuDNN 9 ----
FROM ${CUDA_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --create-home --shell /usr/sbin/nologin node \
 && install -d -o node -g node /var/cache/cuda
COPY --from=node /usr/local/bin/node /usr/local/bin/node
# DINOQ_WORKER_QUEUES is left to the worker's default for its device class; docker-compose.yml and the
# Kubernetes manifests name the queues explicitly. The CUDA cache only matters for a GPU newer than
# the library's targets (kernels JIT-compiled from PTX).
ENV NODE_ENV=production \
    DINOQ_BACKEND=tensorflow-gpu \
    DINOQ_DEVICE_CLASS=gpu \
    CUDA_CACHE_PATH=/var/cache/cuda \
    CUDA_CACHE_MAXSIZE=4294967296
WORKDIR /app
COPY --from=tfjs /app /app
# Fails the build, rather than the first job, if the binding or libtensorflow did not land or cannot be
# linked here. No GPU is visible during the build; TensorFlow only loads the CUDA libraries lazily, and
# the worker's start-up check proves the GPU backend before it takes a job.
RUN node -e "require('@tensorflow/tfjs-node-gpu')"
USER node
# tini as PID 1 forwards SIGTERM to node (the worker then finishes or abandons its shard) and reaps the
# sandboxed job processes.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "apps/worker/dist/main.js"]
