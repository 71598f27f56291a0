# syntax=docker/dockerfile:1
# dinoq HTTP API (apps/api). Build from the repository root:
#   docker build -f infra/docker/api.Dockerfile -t dinoq/api .

# Exact versions; scripts/pin-image-digests.sh adds the @sha256 digest each tag points at today.
ARG NODE_IMAGE=node:24.20.0-bookworm-slim

# ---- build: install every dependency, compile the workspaces, then drop the dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig*.json ./
COPY libs/ libs/
COPY apps/ apps/
# --ignore-scripts: in the production tree only the optional tfjs-node packages have install scripts,
# and those download libtensorflow, which the API never uses (it does not train).
# The cache mount keeps the npm download cache between builds, so re-running `npm ci` after a source
# change costs no network traffic.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
RUN npm run build && npm prune --omit=dev

# ---- runtime ----
FROM ${NODE_IMAGE}
# tini as PID 1 forwards SIGTERM to node and reaps the processes node leaves behind.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PORT=3000
WORKDIR /app
# Owned by root and only readable by the app user: the process cannot rewrite its own code.
COPY --from=build /app /app
USER node
EXPOSE 3000
# The slim image has no curl; Node's global fetch does the probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "apps/api/dist/main.js"]
