#!/usr/bin/env bash
# Docker-free single-node Kafka (KRaft) from the official broker jars, fetched with Maven.
# Usage: kafka.sh up|down|status|clean   (idempotent; a stale pid file is handled)
# Variables: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_SASL_PORT (9094: SASL_PLAINTEXT
#            with SCRAM-SHA-512, no users until one is created), KAFKA_HOME_DIR (var/kafka),
#            KAFKA_CACHE_DIR (.cache/kafka), PYTHON (.venv/bin/python), KAFKA_HEAP (1g)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
sasl_port=${KAFKA_SASL_PORT:-9094}
home=${KAFKA_HOME_DIR:-$root/var/kafka}
cache=${KAFKA_CACHE_DIR:-$root/.cache/kafka}
python=${PYTHON:-$root/.venv/bin/python}
heap=${KAFKA_HEAP:-1g}
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
libs=$cache/$version/libs
pidfile=$home/kafka.pid
log=$home/server.log

say() { echo "kafka: $*"; }

running_pid() {
  # Prints the broker pid if the pid file points at a live Kafka broker; clears a stale file.
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    echo "$pid"; return 0
  fi
  rm -f "$pidfile"; return 1
}

answers() {
  # True when a Kafka broker answers a metadata request on the port (nothing listening: no Python started).
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1
  "$python" - "$port" <<'PY' >/dev/null 2>&1
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}", "log_level": 0}).list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
PY
}

fetch_jars() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  # One fetch at a time: parallel test processes may start brokers together on a fresh clone.
  mkdir -p "$cache"
  if command -v flock >/dev/null; then
    exec 9>"$cache/.fetch.lock"; flock 9
    if [ -f "$libs/.complete" ]; then exec 9>&-; return 0; fi
  fi
  command -v mvn >/dev/null || { say "Maven (mvn) is required to fetch the broker jars"; exit 1; }
  command -v java >/dev/null || { say "Java 17+ is required to run the broker"; exit 1; }
  say "fetching Apache Kafka $version broker jars with Maven into $libs"
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs" >"$cache/mvn.log" 2>&1 \
    || { say "Maven could not fetch the jars:"; tail -30 "$cache/mvn.log"; exit 1; }
  touch "$libs/.complete"
  exec 9>&-
}

up() {
  if pid=$(running_pid); then
    say "already running (pid $pid) on 127.0.0.1:$port"; return 0
  fi
  if answers; then
    say "a broker already answers on 127.0.0.1:$port (not started by this script); using it"; return 0
  fi
  fetch_jars
  mkdir -p "$home/data"
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@SASL_PORT@|$sasl_port|g" \
      -e "s|@DATA_DIR@|$home/data|g" \
      "$here/kafka/server.properties.in" >"$home/server.properties"
  local cp="$libs/*"
  local jvm=(-Xms256m "-Xmx$heap" -XX:+UseG1GC -Djava.awt.headless=true
             "-Dlog4j2.configurationFile=$here/kafka/log4j2.xml")
  if [ ! -f "$home/data/meta.properties" ]; then
    local cluster_id; cluster_id=$(java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool random-uuid)
    java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
         -c "$home/server.properties" >"$home/format.log" 2>&1 \
      || { say "formatting the log dir failed:"; cat "$home/format.log"; exit 1; }
  fi
  say "starting Kafka $version on 127.0.0.1:$port (log: $log)"
  nohup java "${jvm[@]}" -cp "$cp" kafka.Kafka "$home/server.properties" >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 120); do
    if answers; then say "ready on 127.0.0.1:$port"; return 0; fi
    # The child's pid, not running_pid: right after the fork its cmdline is still bash's.
    if ! kill -0 "$pid" 2>/dev/null; then say "broker exited during start-up; last log lines:"; tail -30 "$log"; exit 1; fi
    sleep 0.5
  done
  say "broker did not answer within 60 s; last log lines:"; tail -30 "$log"; exit 1
}

down() {
  local pid
  if ! pid=$(running_pid); then say "not running"; return 0; fi
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return 0; }
    sleep 0.5
  done
  say "did not stop within 30 s; killing"
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
