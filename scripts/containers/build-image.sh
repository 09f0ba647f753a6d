#!/usr/bin/env bash
# Builds the project's image with its own Dockerfile on the stand-in base (build-base.sh), for the
# container tests and for trying the image on a machine that cannot pull TensorFlow's GPU image.
#
#   bash scripts/containers/build-image.sh [IMAGE]    # default hptune-test:latest
#
# The Dockerfile's base is a build argument (BASE_IMAGE) defaulting to TensorFlow's GPU image; here
# it is the stand-in, never pulled. Prints the image's name and size on its last line.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=${1:-hptune-test:latest}
LABEL=io.hptune.test-image

fail() { echo "cannot build the hptune image: $*" >&2; exit 1; }
base=$(bash "$REPO/scripts/containers/build-base.sh" | tail -n 1)
start=$(date +%s)
docker build --network host --build-arg "BASE_IMAGE=$base" --label "$LABEL=1" -t "$IMAGE" "$REPO" >&2 \
  || fail "docker build failed (see above)"
# Earlier builds of this tag, now untagged.
docker image prune --force --filter "label=$LABEL=1" >/dev/null 2>&1 || true
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "built $IMAGE on $base in $(($(date +%s) - start)) s" >&2
echo "$IMAGE $size"
