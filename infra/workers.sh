#!/usr/bin/env bash
# Start, stop or show the reelset workers of this checkout (one per task queue):
#   video: workflows + CPU activities on $REELSET_VIDEO_TASK_QUEUE (default reelset-video)
#   gpu:   training activities on $REELSET_GPU_TASK_QUEUE (default reelset-gpu)
#   gateway: the labelling gateway, Label Studio's webhooks -> signals to waiting runs
#            (http://$LABEL_STUDIO_GATEWAY_HOST:$LABEL_STUDIO_GATEWAY_PORT/webhooks/label-studio)
# Usage: infra/workers.sh start|stop|status|restart [video|gpu|gateway ...]
# Logs: $REELSET_LOG_DIR/worker-<name>.log; pids: $REELSET_RUN_DIR/worker-<name>.pid
set -euo pipefail
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$REELSET_LOG_DIR" "$REELSET_RUN_DIR"

entry() { case "$1" in video) echo workers/video-worker.ts ;; gpu) echo workers/gpu-worker.ts ;; gateway) echo workers/labeling-gateway.ts ;; *) echo "unknown worker $1" >&2; exit 2 ;; esac; }
pid_of() { local f="$REELSET_RUN_DIR/worker-$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

start_one() {
  local name=$1 pid
  if pid=$(pid_of "$name"); then echo "[workers] $name already running (pid $pid)"; return; fi
  local log="$REELSET_LOG_DIR/worker-$name.log"
  # GPU workers: the CUDA libraries from PyPI wheels (written by infra/install-gpu.sh).
  if [ "$name" = gpu ] && [ -f "$REELSET_TOOLS_DIR/gpu.env" ]; then
    # shellcheck disable=SC1091
    source "$REELSET_TOOLS_DIR/gpu.env"
  fi
  # `set -m`: the worker gets a process group of its own whose id is the pid we record
  # (tsx runs the worker in a child process of that group), so stop can reach both.
  (set -m; cd "$REELSET_ROOT" || exit 1; NODE_NO_WARNINGS=1 nohup node "$REELSET_ROOT/node_modules/tsx/dist/cli.mjs" "$(entry "$name")" </dev/null >>"$log" 2>&1 & echo $! >"$REELSET_RUN_DIR/worker-$name.pid")
  # Ready when the worker logs that it started (its first poll follows).
  for _ in $(seq 1 120); do
    if grep -q "worker started" "$log" 2>/dev/null && [ "$(grep -c 'worker started' "$log")" -ge "$(grep -c '"configuration"' "$log")" ]; then
      echo "[workers] $name started (pid $(cat "$REELSET_RUN_DIR/worker-$name.pid"), log $log)"; return
    fi
    if ! pid_of "$name" >/dev/null; then echo "[workers] $name exited; last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "[workers] $name did not start within 60 s; see $log" >&2; exit 1
}

stop_one() {
  local name=$1 pid
  if ! pid=$(pid_of "$name"); then echo "[workers] $name not running"; rm -f "$REELSET_RUN_DIR/worker-$name.pid"; return; fi
  # SIGTERM to tsx, which passes it to the worker: a graceful shutdown (running
  # activities are cancelled after the worker's shutdownGraceTime); then the group is killed.
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$REELSET_RUN_DIR/worker-$name.pid"
  echo "[workers] $name stopped"
}

status_one() {
  local name=$1 pid
  if pid=$(pid_of "$name"); then printf '%-8s up     pid=%s\n' "worker-$name" "$pid"; else printf '%-8s down\n' "worker-$name"; return 1; fi
}

cmd=${1:-status}; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(video gpu gateway)
rc=0
case "$cmd" in
  start) for n in "${names[@]}"; do start_one "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_one "$n"; done ;;
  restart) for n in "${names[@]}"; do stop_one "$n"; start_one "$n"; done ;;
  status) for n in "${names[@]}"; do status_one "$n" || rc=1; done ;;
  *) echo "usage: $0 start|stop|status|restart [video|gpu|gateway ...]" >&2; exit 2 ;;
esac
exit $rc
