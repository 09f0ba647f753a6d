#!/usr/bin/env bash
# Builds the stand-in for the Dockerfile's base image (TensorFlow's GPU image), which the container
# tests never pull: no registry is reachable from CI.
#
#   bash scripts/containers/build-base.sh      # prints the stand-in's image name on its last line
#
# The stand-in is Debian bookworm made by mmdebstrap (python3 3.11, pip, venv, passwd for
# groupadd/useradd, ca-certificates), imported with `docker import`, then TensorFlow at the version
# the Dockerfile's TENSORFLOW_VERSION expects, pip-installed by a `docker build --network host`.
# Like the real base: Python 3.11, pip usable as root (no EXTERNALLY-MANAGED marker), TensorFlow
# installed by pip, groupadd and useradd. Unlike it: no CUDA, no cuDNN, no GPU libraries (the CPU
# build of the same TensorFlow wheel runs), Debian's Python instead of Ubuntu's, and this
# machine's pip settings (index URL, CA bundle) in /etc/pip.conf, so that the Dockerfile's own
# `pip install` reaches the package index from inside a build here.
#
# Cached: the image is tagged hptune-test-base:<key>, the key a hash of its inputs (this script,
# the TensorFlow version, the apt sources, the pip settings and CA bundle carried in); a run with
# the same inputs reuses it, a missing cache is only slower, and stand-ins of other keys are
# removed once a new one is built.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DOCKERFILE=${DOCKERFILE:-$REPO/Dockerfile}
SUITE=bookworm
PACKAGES=python3,python3-pip,python3-venv,passwd,ca-certificates
# Where the packages come from: HPTUNE_DEBIAN_SOURCES (a sources.list or deb822 .sources file),
# else this machine's own apt sources when it runs bookworm (its mirror or proxy is the one that
# works here), else deb.debian.org.
sources=()
if [ -n "${HPTUNE_DEBIAN_SOURCES:-}" ]; then
  sources=("$HPTUNE_DEBIAN_SOURCES")
elif grep -qs "^VERSION_CODENAME=$SUITE\$" /etc/os-release; then
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    if [ -s "$file" ] && grep -qs "^[^#]*$SUITE" "$file" && grep -qs "debian" "$file"; then
      sources+=("$file")
    fi
  done
fi
if [ ${#sources[@]} -eq 0 ]; then
  sources=("deb http://deb.debian.org/debian $SUITE main" "deb http://deb.debian.org/debian $SUITE-updates main"
    "deb http://deb.debian.org/debian-security $SUITE-security main")
fi

fail() { echo "cannot build the stand-in base: $*" >&2; exit 1; }
command -v docker >/dev/null 2>&1 || fail "no docker command"
command -v mmdebstrap >/dev/null 2>&1 || fail "no mmdebstrap (run \`make tools\`)"
tf_version=$(sed -n 's/^ARG TENSORFLOW_VERSION=\([^ ]*\).*/\1/p' "$DOCKERFILE" | head -n 1)
[ -n "$tf_version" ] || fail "no ARG TENSORFLOW_VERSION=... in $DOCKERFILE"

# This machine's pip settings, as `pip config list` and the PIP_* variables give them: the index
# URLs that are reachable over the network (file:// ones are this machine's disk, not the
# container's), trusted hosts, timeout, and the CA bundle pip is told to trust.
pip_setting() {
  local name=$1 env_name value
  env_name="PIP_$(echo "$name" | tr 'a-z-' 'A-Z_')"
  value=${!env_name:-}
  if [ -z "$value" ]; then
    value=$( (python3 -m pip config list 2>/dev/null || true) \
      | sed -n "s/^[^.]*\.$name='\(.*\)'\$/\1/p" | tail -n 1)
  fi
  echo "$value"
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cert=$(pip_setting cert)
cert=${cert:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
[ -r "$cert" ] || fail "the CA bundle pip uses ($cert) is not readable"
cp "$cert" "$work/pip-ca-bundle.crt"
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/hptune-pip-ca-bundle.crt"
  index=$(pip_setting index-url)
  [ -z "$index" ] || echo "index-url = $index"
  extra=$(for url in $(pip_setting extra-index-url); do case $url in http*) echo -n "$url " ;; esac; done)
  [ -z "$extra" ] || echo "extra-index-url = ${extra% }"
  trusted=$(pip_setting trusted-host)
  [ -z "$trusted" ] || echo "trusted-host = $trusted"
  timeout=$(pip_setting default-timeout)
  [ -z "$timeout" ] || echo "timeout = $timeout"
} >"$work/pip.conf"

key=$( (cat "$0"; echo "$tf_version $SUITE $PACKAGES"
  for source in "${sources[@]}"; do if [ -f "$source" ]; then cat "$source"; else echo "$source"; fi; done
  cat "$work/pip.conf" "$work/pip-ca-bundle.crt") | sha256sum | cut -c1-16)
image=hptune-test-base:$key
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "stand-in base cached: $image (TensorFlow $tf_version)" >&2
  echo "$image"
  exit 0
fi

start=$(date +%s)
echo "building the stand-in base $image: Debian $SUITE by mmdebstrap, then TensorFlow $tf_version" >&2
# The host's apt may read a snapshot mirror whose Release files are old: accept them, as it does.
mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  "$SUITE" "$work/rootfs.tar" "${sources[@]}" \
  || fail "mmdebstrap $SUITE failed (see above)"
docker import --change 'CMD ["python3"]' "$work/rootfs.tar" "hptune-test-os:$key" >/dev/null
rm -f "$work/rootfs.tar"
echo "debian $SUITE imported as hptune-test-os:$key after $(($(date +%s) - start)) s" >&2

# The base the Dockerfile builds on by default: its BASE_IMAGE build argument.
from=$(sed -n 's/^ARG BASE_IMAGE=\([^ ]*\).*/\1/p' "$DOCKERFILE" | head -n 1)
[ -n "$from" ] || fail "no ARG BASE_IMAGE=<image> default in $DOCKERFILE"
cat >"$work/Dockerfile" <<EOF
FROM hptune-test-os:$key
COPY pip-ca-bundle.crt /etc/ssl/certs/hptune-pip-ca-bundle.crt
COPY pip.conf /etc/pip.conf
# The real base lets root pip-install into the system Python; Debian marks it externally managed.
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
    && python3 -m pip install --no-cache-dir --disable-pip-version-check tensorflow==$tf_version \\
    && python3 -c "import tensorflow as tf; assert tf.__version__ == '$tf_version', tf.__version__"
LABEL io.hptune.stand-in-for="$from" io.hptune.stand-in-key="$key"
EOF
build_args=()
for name in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
  [ -z "${!name:-}" ] || build_args+=(--build-arg "$name")
done
docker build --network host ${build_args[@]+"${build_args[@]}"} -t "$image" "$work" >&2 \
  || fail "pip install tensorflow==$tf_version in the stand-in failed (see above)"
docker rmi "hptune-test-os:$key" >/dev/null 2>&1 || true
# Stand-ins built from other inputs (an older script, another TensorFlow) are not used again.
for old in $(docker images --format '{{.Repository}}:{{.Tag}}' hptune-test-base); do
  [ "$old" = "$image" ] || docker rmi "$old" >/dev/null 2>&1 || true
done
echo "stand-in base $image built in $(($(date +%s) - start)) s" >&2
echo "$image"
