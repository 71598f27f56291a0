# syntax=docker/dockerfile:1
# dinoq CPU worker (apps/worker). Two CPU backends ship in this image; DINOQ_BACKEND picks one:
#   tensorflow (default): @tensorflow/tfjs-node, libtensorflow 2.9.1 CPU, which threads every op itself.
#   wasm: the tfjs wasm backend with the @dinoq/native-blas addon (OpenBLAS sgemm and vector kernels);
#         the only CPU path measured so far (README.md, "Training speed"). Set DINOQ_TRAIN_REPLICAS
#         to fit the pod's memory when using it (auto means one replica per core).
# Build from the repository root:
#   docker build -f infra/docker/worker-cpu.Dockerfile -t dinoq/worker-cpu .

# Exact versions; scripts/pin-image-digests.sh adds the @sha256 digest each tag points at today.
ARG NODE_IMAGE=node:24.20.0-bookworm-slim

# ---- build ----
FROM ${NODE_IMAGE} AS build
# g++/make/python3: node-gyp, for the OpenBLAS addon (and for the tfjs binding should its prebuilt
# download fail). libopenblas-dev: the addon links -lopenblas (Debian's OpenBLAS 0.3.21, the one the
# benchmarks used; it picks its kernels for the CPU at run time).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libopenblas-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig*.json ./
COPY libs/ libs/
COPY apps/ apps/
# Install scripts are skipped here and run below for what this image needs, so the GPU build of
# libtensorflow (an optional dependency as well) is never downloaded into a CPU image.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
RUN npm run build && npm prune --omit=dev
# The addon's own install script assumes Debian's nodejs package (headers under /usr/include/node);
# the official Node image keeps them under /usr/local/include/node, so node-gyp (bundled with npm) is
# pointed there and nothing is downloaded. Unlike the install script, a failed build fails the image.
RUN cd libs/native-blas \
 && node /usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir=/usr/local
# Same version as @tensorflow/tfjs-core in the lockfile, so npm dedupes it and the native backend
# registers itself with the very tfjs-core instance the libraries import.
# `npm rebuild` runs the package's install script: libtensorflow is downloaded now, at build time,
# never when a pod starts.
RUN --mount=type=cache,target=/root/.npm \
    npm install --no-save --omit=dev --ignore-scripts --no-audit --no-fund @tensorflow/tfjs-node@4.22.0 \
 && npm rebuild --foreground-scripts @tensorflow/tfjs-node

# ---- runtime ----
FROM ${NODE_IMAGE}
# libopenblas0-pthread: the runtime half of libopenblas-dev above, for the addon.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libopenblas0-pthread \
 && rm -rf /var/lib/apt/lists/*
# DINOQ_WORKER_QUEUES is left to the worker's default for its device class; docker-compose.yml and the
# Kubernetes manifests name the queues explicitly.
ENV NODE_ENV=production \
    DINOQ_BACKEND=tensorflow \
    DINOQ_DEVICE_CLASS=cpu
WORKDIR /app
COPY --from=build /app /app
# Fails the build, rather than the first job, if the native binding, libtensorflow or the OpenBLAS
# addon did not land or cannot be linked here.
RUN node -e "require('@tensorflow/tfjs-node')" \
 && node -e "const r = require('@dinoq/native-blas').loadNativeBlas(); if (!r.blas) throw new Error(r.reason)"
USER node
# tini as PID 1 forwards SIGTERM to node (the worker then finishes or abandons its job) and reaps the
# sandboxed job processes.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "apps/worker/dist/main.js"]
