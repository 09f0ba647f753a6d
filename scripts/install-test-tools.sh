#!/usr/bin/env bash
# Installs the real programs the test suite talks to, where they are missing (Debian packages):
# Prometheus and the Pushgateway (the metrics tests), and Chromium, whose headless mode loads the
# HTML report (tests/integration/test_report_browser.py). Needs root or sudo for apt-get.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
# The container tests (tests/containers/, docs/containers.md): Debian's Docker engine, which
# scripts/containers/start-docker.sh starts without a bridge, and mmdebstrap for the stand-in base.
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing ${missing[*]} (Debian packages)"
# docker.io's postinst would start dockerd with its defaults (a docker0 bridge, iptables rules):
# no service starts during this install; start-docker.sh starts the engine without either.
if [[ " ${missing[*]} " == *" docker.io "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod 755 /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
