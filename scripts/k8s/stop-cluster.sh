#!/usr/bin/env bash
# Stop the processes started by start-cluster.sh (by PID only) and remove the etcd data dir.
set -u
STATE_DIR="$1"
for f in kwok.pid scheduler.pid kcm.pid apiserver.pid etcd.pid; do
  [ -f "$STATE_DIR/$f" ] || continue
  pid=$(cat "$STATE_DIR/$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$STATE_DIR/$f"
done
if [ -f "$STATE_DIR/etcd-data-dir" ]; then
  d=$(cat "$STATE_DIR/etcd-data-dir")
  case "$d" in /dev/shm/etcd-data.*|"$STATE_DIR"/etcd-data.*) rm -rf "$d" ;; esac
fi
