#!/usr/bin/env bash
# Pins every base image of infra/docker/*.Dockerfile (the `ARG *_IMAGE=` defaults) and every third-party
# image of docker-compose.yml to the digest its tag points at now: `node:24.20.0-bookworm-slim` becomes
# `node:24.20.0-bookworm-slim@sha256:...`. The tag stays for readers; the digest is what gets pulled.
# Re-run it to move to a rebuilt tag (security updates of the same version), and review the diff.
#
# Needs Docker with buildx (`docker buildx imagetools inspect` reads the registry, it pulls nothing).
# The digest is the multi-platform index digest, so the pin holds on amd64 and arm64 alike.
#   scripts/pin-image-digests.sh            rewrite the files in place
#   scripts/pin-image-digests.sh --check    exit 1 if any image is not pinned (for CI)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-write}
files=(infra/docker/*.Dockerfile docker-compose.yml)
# `ARG NAME_IMAGE=ref` in Dockerfiles, `image: ref` in compose; images built here (dinoq/*) are skipped.
pattern='^(ARG [A-Z_]+_IMAGE=|[[:space:]]+image: )([^[:space:]#]+)'

digest_of() {
  docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' |
    sed -n 's/.*"digest":"\(sha256:[0-9a-f]\{64\}\)".*/\1/p' | head -n 1
}

unpinned=0
for file in "${files[@]}"; do
  while IFS= read -r ref; do
    case "$ref" in dinoq/*) continue ;; esac
    tag=${ref%@*}
    if [ "$mode" = --check ]; then
      [ "$tag" != "$ref" ] || { echo "not pinned: $ref ($file)" >&2; unpinned=1; }
      continue
    fi
    digest=$(digest_of "$tag")
    [ -n "$digest" ] || { echo "no digest for $tag" >&2; exit 1; }
    echo "$file: $tag@$digest"
    # The exact reference, as a whole word: a line is rewritten only where that image is named.
    REF="$ref" PINNED="$tag@$digest" perl -pi -e 's/(?<=[=\s])\Q$ENV{REF}\E(?=\s|$)/$ENV{PINNED}/' "$file"
  done < <(grep -E "$pattern" "$file" | sed -E "s/$pattern.*/\2/")
done
exit "$unpinned"
