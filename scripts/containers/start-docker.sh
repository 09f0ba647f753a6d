#!/usr/bin/env bash
# Starts a Docker engine for the container tests (tests/containers/), where none answers yet.
#
# The engine is Debian's docker.io (scripts/install-test-tools.sh installs it). It runs without a
# bridge and without iptables rules: every test container uses --network host, so nothing but
# loopback is ever configured. Its data root is /var/lib/docker, so images built by one run (the
# stand-in base) are there for the next.
#
#   bash scripts/containers/start-docker.sh    # exit 0: `docker info` answers
#
# On failure it prints one line saying why (the engine's last log line), and exits 1.
set -euo pipefail
LOG=${HPTUNE_DOCKERD_LOG:-/var/log/hptune-dockerd.log}
WAIT_SECONDS=${HPTUNE_DOCKERD_WAIT:-60}

if docker info >/dev/null 2>&1; then
  exit 0
fi
fail() { echo "cannot start a Docker engine: $*" >&2; exit 1; }
command -v docker >/dev/null 2>&1 || fail "no docker command (run \`make tools\`)"
command -v dockerd >/dev/null 2>&1 || fail "no dockerd (Debian's docker.io; run \`make tools\`)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "dockerd needs root, and there is no sudo"
  sudo -n true 2>/dev/null || fail "dockerd needs root, and sudo asks for a password"
  sudo="sudo -n"
fi
last_log_line() { grep -v '^\s*$' "$LOG" 2>/dev/null | tail -n 1 || true; }
# A socket left by an engine that is gone would make dockerd refuse to start.
if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null 2>&1; then
  $sudo rm -f /var/run/docker.sock /var/run/docker.pid
fi
mkdir -p "$(dirname "$LOG")" 2>/dev/null || true
# Its own session: a Ctrl-C on the test run does not reach it; it stays up for the next run.
$sudo sh -c "setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
  --data-root /var/lib/docker --host unix:///var/run/docker.sock >>'$LOG' 2>&1 </dev/null &"
for _ in $(seq 1 "$WAIT_SECONDS"); do
  if $sudo docker info >/dev/null 2>&1; then
    # Not root: the socket is handed to this user only (what the docker group would give it).
    [ -z "$sudo" ] || $sudo chown "$(id -u)" /var/run/docker.sock
    echo "Docker engine started (dockerd $(dockerd --version | sed 's/^Docker version //'), log $LOG)"
    exit 0
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    fail "dockerd exited: $(last_log_line)"
  fi
  sleep 1
done
fail "dockerd did not answer within ${WAIT_SECONDS} s: $(last_log_line)"
