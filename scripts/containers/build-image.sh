#!/usr/bin/env bash
# Builds the project's image with its own Dockerfile on the stand-in base (build-base.sh), for the
# container tests and for trying the image on a machine that cannot pull TensorFlow's GPU image.
#
#   bash scripts/containers/build-image.sh [IMAGE]    # default hptune-test:latest
#
# The Dockerfile's FROM names the real base; for the length of the build that name is a tag of the
# stand-in (never pulled), and it is removed again afterwards, so that nothing on this machine
# later mistakes the stand-in for TensorFlow's image. A real image already under that name is left
# alone: the build refuses to run instead. Prints the image's name and size on its last line.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=${1:-hptune-test:latest}
LABEL=io.hptune.test-image

fail() { echo "cannot build the hptune image: $*" >&2; exit 1; }
base=$(bash "$REPO/scripts/containers/build-base.sh" | tail -n 1)
from=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' "$REPO/Dockerfile" | head -n 1)
[ -n "$from" ] || fail "no FROM line in $REPO/Dockerfile"
if docker image inspect "$from" >/dev/null 2>&1; then
  key=$(docker image inspect --format '{{index .Config.Labels "io.hptune.stand-in-key"}}' "$from")
  [ -n "$key" ] || fail "$from on this machine is not the stand-in; build on it directly, or remove it"
fi
docker tag "$base" "$from"
start=$(date +%s)
status=0
docker build --network host --label "$LABEL=1" -t "$IMAGE" "$REPO" >&2 || status=$?
docker rmi "$from" >/dev/null 2>&1 || true
[ "$status" -eq 0 ] || fail "docker build failed (see above)"
# Earlier builds of this tag, now untagged.
docker image prune --force --filter "label=$LABEL=1" >/dev/null 2>&1 || true
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "built $IMAGE on $base in $(($(date +%s) - start)) s" >&2
echo "$IMAGE $size"
