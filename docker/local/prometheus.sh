#!/usr/bin/env bash
# Makes sure `prometheus` and `promtool` are on the PATH (the alerting tests run them): Debian's
# `prometheus` package, installed with apt-get when they are missing and we may install packages.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "prometheus and promtool are needed by the alerting tests; install them (Debian/Ubuntu:" \
       "'sudo apt-get install prometheus', or a release from prometheus.io) and run again" >&2
  exit 1
fi
echo "installing Debian's prometheus package (prometheus, promtool) for the alerting tests"
export DEBIAN_FRONTEND=noninteractive
# The package would start its own service where an init system runs: tests start theirs.
apt-get install -y -q --no-install-recommends prometheus >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
command -v promtool >/dev/null
