#!/usr/bin/env bash
# Docker-free MongoDB-protocol server: FerretDB v1 (Go module) with its SQLite backend.
# Usage: mongo.sh up|down|status|clean   (idempotent; a stale pid file is handled)
# Variables: MONGO_PORT (27017), MONGO_HOME_DIR (var/mongo), MONGO_CACHE_DIR (.cache/ferretdb)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

version=v1.24.0
port=${MONGO_PORT:-27017}
home=${MONGO_HOME_DIR:-$root/var/mongo}
cache=${MONGO_CACHE_DIR:-$root/.cache/ferretdb}
bin=$cache/$version/ferretdb
pidfile=$home/ferretdb.pid
log=$home/ferretdb.log

say() { echo "mongo: $*"; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ferretdb; then
    echo "$pid"; return 0
  fi
  rm -f "$pidfile"; return 1
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

build() {
  if [ -x "$bin" ]; then return 0; fi
  # One build at a time: parallel test processes may start servers together on a fresh clone.
  mkdir -p "$cache"
  if command -v flock >/dev/null; then
    exec 9>"$cache/.build.lock"; flock 9
    if [ -x "$bin" ]; then exec 9>&-; return 0; fi
  fi
  command -v go >/dev/null || { say "Go is required to build FerretDB"; exit 1; }
  say "building FerretDB $version from the Go module proxy (first run only, ~1 min)"
  local work; work=$(mktemp -d)
  # Build inside the module's own source tree so its go.mod/go.sum pin every dependency.
  # `go install ...@version` is not used: the proxy refuses the module's version list,
  # which `go install` asks for to check deprecation.
  local dir
  dir=$(cd "$work" && GOTOOLCHAIN=local GOFLAGS= go mod download -json "github.com/FerretDB/FerretDB@$version" \
        | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  [ -n "$dir" ] || { say "could not download the FerretDB module"; exit 1; }
  cp -r "$dir" "$work/src"; chmod -R u+w "$work/src"
  # The release tag is normally written by FerretDB's task runner from git; the module zip lacks it.
  echo "$version" >"$work/src/build/version/version.txt"
  mkdir -p "$(dirname "$bin")"
  (cd "$work/src" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" ./cmd/ferretdb)
  mv "$bin.tmp" "$bin"
  rm -rf "$work"
  exec 9>&-
}

up() {
  if pid=$(running_pid); then say "already running (pid $pid) on 127.0.0.1:$port"; return 0; fi
  if answers; then say "a server already listens on 127.0.0.1:$port (not started by this script); using it"; return 0; fi
  build
  mkdir -p "$home/sqlite"
  say "starting FerretDB $version (SQLite backend) on 127.0.0.1:$port (log: $log)"
  nohup "$bin" --handler=sqlite --sqlite-url="file:$home/sqlite/" \
       --listen-addr="127.0.0.1:$port" --telemetry=disable --log-level=warn \
       --debug-addr=- --state-dir="$home" >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 60); do
    if answers; then say "ready on 127.0.0.1:$port"; return 0; fi
    # The child's pid, not running_pid: right after the fork its cmdline is still bash's.
    if ! kill -0 "$pid" 2>/dev/null; then say "FerretDB exited during start-up:"; tail -30 "$log"; exit 1; fi
    sleep 0.5
  done
  say "FerretDB did not listen within 30 s:"; tail -30 "$log"; exit 1
}

down() {
  local pid
  if ! pid=$(running_pid); then say "not running"; return 0; fi
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return 0; }
    sleep 0.25
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

status() {
  if pid=$(running_pid); then say "running (pid $pid) on 127.0.0.1:$port"; else say "not running"; return 1; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  clean) down; rm -rf "$home"; say "removed $home" ;;
  *) echo "usage: $0 up|down|status|clean" >&2; exit 2 ;;
esac
