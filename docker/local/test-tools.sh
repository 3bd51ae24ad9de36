#!/usr/bin/env bash
# Makes sure the programs some tests run are on the PATH, from Debian's packages, installed with
# apt-get when they are missing and we may install packages:
#   prometheus, promtool (package prometheus): the alerting tests;
#   nft (package nftables): the enforcement test in a network namespace (skipped without it).
set -euo pipefail
missing=()
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
command -v nft >/dev/null || [[ -x /usr/sbin/nft ]] || missing+=(nftables)
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "the tests need Debian's ${missing[*]} package(s) (prometheus/promtool for the alerting tests, nft for" \
       "the enforcement test); install them (e.g. 'sudo apt-get install ${missing[*]}') and run again" >&2
  exit 1
fi
echo "installing Debian's ${missing[*]} package(s) for the tests"
export DEBIAN_FRONTEND=noninteractive
# No service is started by the tests from these packages: they start their own processes.
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
command -v promtool >/dev/null
