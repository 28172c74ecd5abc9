#!/usr/bin/env bash
# Manage reelset's local services (all bound to 127.0.0.1, state under $REELSET_DATA_DIR).
#   infra/services.sh start|stop|status|restart [temporal|postgres|s3|label-studio ...]   (default: all)
# Services: temporal (dev server + Web UI, SQLite file), postgres, s3 (versitygw POSIX or minio),
# label-studio (Django in its own venv; its database in the postgres above, so it starts after it).
# pid files: $REELSET_DATA_DIR/run/<svc>.pid   logs: $REELSET_DATA_DIR/logs/<svc>.log
# Run infra/install.sh first.
set -euo pipefail

# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

ALL_SERVICES=(temporal postgres s3 label-studio)
STOP_TIMEOUT=10
TEMPORAL_DIR="$REELSET_DATA_DIR/temporal"
PG_DIR="$REELSET_DATA_DIR/postgres"
S3_DIR="$REELSET_DATA_DIR/s3"
S3_SIDECAR_DIR="$REELSET_DATA_DIR/s3-meta"   # only used when the FS lacks user xattrs
LS_DIR="$REELSET_DATA_DIR/label-studio"      # its media, exports and generated secret key (keep it)
LS_START_TIMEOUT=$LABEL_STUDIO_START_TIMEOUT

log() { printf '[services] %s\n' "$*"; }
err() { printf '[services] ERROR: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
IS_ROOT=0; [ "$(id -u)" -eq 0 ] && IS_ROOT=1

mkdir -p "$REELSET_LOG_DIR" "$REELSET_RUN_DIR"

# True if pid is a live process (zombies waiting to be reaped do not count).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

pidfile() { echo "$REELSET_RUN_DIR/$1.pid"; }
logfile() { echo "$REELSET_LOG_DIR/$1.log"; }

# Binary name expected in /proc/<pid>/cmdline (guards against recycled pids).
proc_name() {
  case "$1" in
    temporal) echo temporal ;;
    postgres) echo postgres ;;
    s3) if have minio; then echo minio; else echo versitygw; fi ;;
    label-studio) echo label-studio ;;
  esac
}

# Print the live pid of a service, or fail (and drop a stale pid file).
svc_pid() {
  local f pid
  f=$(pidfile "$1")
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" &&
     tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$(proc_name "$1")"; then
    echo "$pid"; return 0
  fi
  rm -f "$f"
  return 1
}

addr_of() {
  case "$1" in
    temporal) echo "$TEMPORAL_ADDRESS (ui $TEMPORAL_UI_URL)" ;;
    postgres) echo "127.0.0.1:$PG_PORT" ;;
    s3) echo "$S3_ENDPOINT" ;;
    label-studio) echo "$LABEL_STUDIO_URL" ;;
  esac
}
dir_of() {
  case "$1" in temporal) echo "$TEMPORAL_DIR" ;; postgres) echo "$PG_DIR" ;; s3) echo "$S3_DIR" ;; label-studio) echo "$LS_DIR" ;; esac
}

port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 | grep .; }
port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# HTTP status code of a GET (000 when nothing answers). curl if present, else python3.
http_code() {
  if have curl; then
    curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null || true
  else
    python3 - "$1" <<'PY' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try: print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as e: print(e.code)
except Exception: print("000")
PY
  fi
}

# Run a command as the postgres system user when we are root (postgres refuses root).
as_pg() {
  if [ "$IS_ROOT" -eq 1 ]; then
    (cd / && setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$PG_DIR" "$@")
  else
    "$@"
  fi
}

pg_bindir() {
  if have initdb && have postgres && have pg_ctl; then
    dirname "$(readlink -f "$(command -v postgres)")"; return 0
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  err "PostgreSQL binaries not found; run infra/install.sh"; return 1
}
pg_tool() { # pg_tool psql ... -> binary from the server's bindir, else PATH
  local b="$1"; shift
  if [ -x "$PGBIN/$b" ]; then "$PGBIN/$b" "$@"; else "$b" "$@"; fi
}

# ------------------------------------------------------------- health ------
healthy() {
  case "$1" in
    temporal)
      temporal operator cluster health --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -q SERVING &&
        [ "$(http_code "$TEMPORAL_UI_URL/")" = 200 ] ;;
    postgres)
      pg_tool pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -t 2 ;;
    s3)
      local c; c=$(http_code "$S3_ENDPOINT/"); [ "$c" != 000 ] ;;
    label-studio)
      [ "$(http_code "$LABEL_STUDIO_URL/health/")" = 200 ] ;;
  esac
}

# ------------------------------------------------------------- launch ------
# Start "$@" detached in its own session, with logs appended to the service log.
spawn() {
  local svc="$1"; shift
  local lf; lf=$(logfile "$svc")
  printf '\n===== %s starting %s =====\n' "$(date -Is)" "$svc" >> "$lf"
  setsid nohup "$@" >> "$lf" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$svc")"
}

launch_temporal() {
  mkdir -p "$TEMPORAL_DIR" || return 1
  spawn temporal temporal server start-dev \
    --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --db-filename "$TEMPORAL_DIR/temporal.db" --namespace "$TEMPORAL_NAMESPACE" \
    --log-level warn --ui-disable-news-fetch \
    --search-attribute ReelsetLabel=Keyword --search-attribute ReelsetStage=Keyword
}

launch_postgres() {
  PGBIN=$(pg_bindir) || return 1
  if [ "$IS_ROOT" -eq 1 ]; then
    id postgres >/dev/null 2>&1 ||
      useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres || return 1
    # postgres must be able to traverse every parent dir and write the socket dir.
    local d="$REELSET_DATA_DIR"
    while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    chgrp postgres "$REELSET_RUN_DIR" && chmod 1775 "$REELSET_RUN_DIR" || return 1
    mkdir -p "$PG_DIR" && chown postgres:postgres "$PG_DIR" && chmod 700 "$PG_DIR" || return 1
  else
    mkdir -p "$PG_DIR" && chmod 700 "$PG_DIR" || return 1
  fi
  if [ ! -s "$PG_DIR/PG_VERSION" ]; then
    log "postgres: initdb $PG_DIR"
    as_pg "$PGBIN/initdb" -D "$PG_DIR" -A trust -E UTF8 --locale=C --username=postgres \
      >> "$(logfile postgres)" 2>&1 || { err "initdb failed"; tail -n 30 "$(logfile postgres)" >&2; return 1; }
  fi
  pg_clear_stale_lock || return 1
  local run=()
  [ "$IS_ROOT" -eq 1 ] && run=(setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$PG_DIR")
  (cd / && spawn postgres "${run[@]}" "$PGBIN/postgres" -D "$PG_DIR" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$REELSET_RUN_DIR" \
    -c logging_collector=off)
}

# After a crash (kill -9) postmaster.pid stays behind and the dead postmaster's
# children need a moment to exit; wait for them, then drop the stale lock file.
pg_clear_stale_lock() {
  local lock="$PG_DIR/postmaster.pid" pid i
  [ -f "$lock" ] || return 0
  pid=$(head -n1 "$lock")
  if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
    err "postgres: a postmaster (pid $pid) not started by this script is running on $PG_DIR"; return 1
  fi
  local u=postgres; [ "$IS_ROOT" -eq 1 ] || u=$(id -un)
  for ((i = 0; i < 50; i++)); do   # orphaned backends (re-parented to pid 1) still exiting
    pgrep -u "$u" -P 1 -f '^postgres: ' >/dev/null 2>&1 || break
    sleep 0.2
  done
  # postgres treats a not-yet-reaped zombie as alive: wait a bit for the reaper.
  for ((i = 0; i < 25; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  log "postgres: removing stale $lock (pid $pid is gone)"
  rm -f "$lock" "$REELSET_RUN_DIR/.s.PGSQL.$PG_PORT.lock" "$REELSET_RUN_DIR/.s.PGSQL.$PG_PORT"
}

# versitygw's POSIX backend stores metadata in user xattrs; fall back to a sidecar dir without them.
s3_xattr_ok() {
  python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.reelset_probe", b"1"); os.removexattr(sys.argv[1], "user.reelset_probe")' "$S3_DIR" 2>/dev/null
}

launch_s3() {
  mkdir -p "$S3_DIR" || return 1
  if have minio; then
    MINIO_ROOT_USER="$S3_ACCESS_KEY_ID" MINIO_ROOT_PASSWORD="$S3_SECRET_ACCESS_KEY" \
      spawn s3 minio server --quiet --address "127.0.0.1:$S3_PORT" \
        --console-address "127.0.0.1:$((S3_PORT + 1))" "$S3_DIR"
  else
    have versitygw || { err "neither minio nor versitygw found; run infra/install.sh"; return 1; }
    local meta=()
    if ! s3_xattr_ok; then
      log "s3: filesystem has no user xattrs; using --sidecar $S3_SIDECAR_DIR"
      mkdir -p "$S3_SIDECAR_DIR"; meta=(--sidecar "$S3_SIDECAR_DIR")
    fi
    # --keep-alive: versitygw closes every connection after one response unless told
    # otherwise, and a TCP connect per S3 request costs both sides CPU.
    spawn s3 versitygw --access "$S3_ACCESS_KEY_ID" --secret "$S3_SECRET_ACCESS_KEY" \
      --region "$S3_REGION" --port "127.0.0.1:$S3_PORT" --quiet --keep-alive \
      posix "${meta[@]}" "$S3_DIR"
  fi
}

# Label Studio: Django's server in one process, from its own venv, in a clean environment
# (it reads any LABEL_STUDIO_*, and unprefixed USERNAME, PASSWORD, HOST, PORT, from its
# environment, so nothing of ours leaks in). The admin and its API token are created on
# the first start only. Its database lives in our PostgreSQL server. No outbound calls
# (version check, Sentry, analytics). Private addresses are allowed for webhooks and
# storages (the gateway and the S3 server are on loopback) except 169.254.0.0/16 (cloud
# metadata). Secrets reach it through the environment, never the command line or a log.
launch_label_studio() {
  [ -x "$LABEL_STUDIO_VENV/bin/label-studio" ] || { err "label-studio not installed in $LABEL_STUDIO_VENV; run infra/install.sh"; return 1; }
  if ! healthy postgres; then
    err "label-studio keeps its data in PostgreSQL, which is not running at 127.0.0.1:$PG_PORT: start it first (bash infra/services.sh start postgres)"
    return 1
  fi
  setup_postgres || return 1
  local q=(pg_tool psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAX)
  if [ "$("${q[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$LABEL_STUDIO_DATABASE'")" != 1 ]; then
    log "label-studio: creating database $LABEL_STUDIO_DATABASE"
    "${q[@]}" -c "CREATE DATABASE $LABEL_STUDIO_DATABASE OWNER reelset" || return 1
  fi
  mkdir -p "$LS_DIR" || return 1
  local fresh=""; [ -s "$LS_DIR/.env" ] || fresh=" (first start: migrations, 30-70 s)"
  log "label-studio: starting on 127.0.0.1:$LABEL_STUDIO_PORT$fresh"
  # The secrets travel in the environment of a bash that clears everything else, never in
  # an argument list (`env -i A=secret ...` would show them in `ps` until it execs).
  spawn label-studio bash -c "$(declare -f label_studio_exec); label_studio_exec \"\$1\"" label-studio "$LS_DIR"
}

# Runs in the spawned bash: keep what Label Studio needs, drop every other variable, exec it.
label_studio_exec() {
  local dir="$1" venv="$LABEL_STUDIO_VENV" port="$LABEL_STUDIO_PORT" pg_port="$PG_PORT" db="$LABEL_STUDIO_DATABASE"
  local email="$LABEL_STUDIO_ADMIN_EMAIL" password="$LABEL_STUDIO_ADMIN_PASSWORD" token="$LABEL_STUDIO_API_TOKEN" v
  for v in $(compgen -e); do unset "$v" 2>/dev/null; done
  export PATH="$venv/bin:/usr/local/bin:/usr/bin:/bin" HOME="$dir" LANG=C.UTF-8 LABEL_STUDIO_BASE_DATA_DIR="$dir" \
    DJANGO_DB=default POSTGRE_HOST=127.0.0.1 POSTGRE_PORT="$pg_port" POSTGRE_USER=reelset POSTGRE_PASSWORD= POSTGRE_NAME="$db" \
    LABEL_STUDIO_USERNAME="$email" LABEL_STUDIO_PASSWORD="$password" LABEL_STUDIO_USER_TOKEN="$token" \
    LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
    LATEST_VERSION_CHECK=false SENTRY_DSN= FRONTEND_SENTRY_DSN= COLLECT_ANALYTICS=false \
    USE_DEFAULT_BANNED_SUBNETS=false USER_ADDITIONAL_BANNED_SUBNETS=169.254.0.0/16
  exec "$venv/bin/label-studio" start --no-browser --port "$port" --internal-host 127.0.0.1
}

# ------------------------------------------------------- post-start setup --
setup_temporal() {
  # start-dev registers the attributes, but make sure (they are per namespace with SQLite).
  local ns have_sa sa
  for ns in $(printf '%s\n' default "$TEMPORAL_NAMESPACE" | sort -u); do
    setup_temporal_ns "$ns" || { err "temporal: setting up namespace $ns failed"; return 1; }
  done
}
setup_temporal_ns() {
  local ns="$1" have_sa sa
  if ! temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$ns" >/dev/null 2>&1; then
    log "temporal: creating namespace $ns"
    temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$ns" >/dev/null || return 1
  fi
  have_sa=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$ns" 2>/dev/null || true)
  for sa in ReelsetLabel ReelsetStage; do
    if ! grep -qw "$sa" <<<"$have_sa"; then
      log "temporal: registering search attribute $sa in namespace $ns"
      temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
        --namespace "$ns" --name "$sa" --type Keyword >/dev/null || return 1
    fi
  done
}

setup_postgres() {
  local q=(pg_tool psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAX)
  if [ "$("${q[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='reelset'")" != 1 ]; then
    log "postgres: creating role reelset"
    "${q[@]}" -c "CREATE ROLE reelset LOGIN SUPERUSER" || return 1
  fi
  if [ "$("${q[@]}" -c "SELECT 1 FROM pg_database WHERE datname='reelset'")" != 1 ]; then
    log "postgres: creating database reelset"
    "${q[@]}" -c "CREATE DATABASE reelset OWNER reelset" || return 1
  fi
}

# Signed (SigV4) S3 call with only the python stdlib: ensure the bucket exists.
setup_s3() {
  python3 - "$S3_ENDPOINT" "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY" "$S3_REGION" "$S3_BUCKET" <<'PY'
import sys, hashlib, hmac, datetime, http.client, urllib.parse
endpoint, ak, sk, region, bucket = sys.argv[1:]
u = urllib.parse.urlparse(endpoint)
def call(method, path):
    t = datetime.datetime.now(datetime.timezone.utc)
    amz, day = t.strftime("%Y%m%dT%H%M%SZ"), t.strftime("%Y%m%d")
    ph = hashlib.sha256(b"").hexdigest()
    hdrs = {"host": u.netloc, "x-amz-content-sha256": ph, "x-amz-date": amz}
    signed = ";".join(sorted(hdrs))
    creq = "\n".join([method, path, "", "".join(f"{k}:{hdrs[k]}\n" for k in sorted(hdrs)), signed, ph])
    scope = f"{day}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + sk).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    hdrs["Authorization"] = f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={signed}, Signature={sig}"
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request(method, path, headers=hdrs)
    r = c.getresponse(); body = r.read().decode(errors="replace")
    return r.status, body
st, _ = call("HEAD", f"/{bucket}")
if st == 200:
    sys.exit(0)
st, body = call("PUT", f"/{bucket}")
if st == 200 or "BucketAlreadyOwnedByYou" in body:
    print(f"[services] s3: created bucket {bucket}")
    sys.exit(0)
print(f"[services] ERROR: s3 CreateBucket {bucket} -> HTTP {st}: {body[:500]}", file=sys.stderr)
sys.exit(1)
PY
}

# The configured API token must work (it is preset on the first start only: an instance
# created with another token answers 401). The token travels in the environment, never argv.
setup_label_studio() {
  local st
  st=$(LS_URL="$LABEL_STUDIO_URL" LS_TOKEN="$LABEL_STUDIO_API_TOKEN" python3 - <<'PY'
import os, urllib.request, urllib.error
req = urllib.request.Request(os.environ["LS_URL"] + "/api/current-user/whoami", headers={"Authorization": "Token " + os.environ["LS_TOKEN"]})
try: print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e: print(e.code)
except Exception: print("000")
PY
)
  [ "$st" = 200 ] && return 0
  err "label-studio answers $st to the configured LABEL_STUDIO_API_TOKEN at $LABEL_STUDIO_URL/api/current-user/whoami:"
  err "  the admin and its token are created on the first start only; this instance ($LS_DIR, database $LABEL_STUDIO_DATABASE) has other ones."
  err "  Set LABEL_STUDIO_API_TOKEN to its token, or stop it and remove both to start afresh."
  return 1
}

# --------------------------------------------------------------- verbs -----
wait_healthy() {
  local svc="$1" timeout="$2" i pid
  for ((i = 0; i < timeout * 2; i++)); do
    healthy "$svc" && return 0
    if ! pid=$(svc_pid "$svc"); then
      err "$svc exited during startup; last lines of $(logfile "$svc"):"
      tail -n 40 "$(logfile "$svc")" >&2; return 1
    fi
    sleep 0.5
  done
  if [ "$svc" = label-studio ]; then
    err "label-studio did not answer $LABEL_STUDIO_URL/health/ within ${timeout}s (a fresh database needs 30-70 s of migrations on 2 cores; raise LABEL_STUDIO_START_TIMEOUT on a slower machine); last lines of $(logfile "$svc"):"
    tail -n 40 "$(logfile "$svc")" >&2; return 1
  fi
  err "$svc did not become ready within ${timeout}s; last lines of $(logfile "$svc"):"
  tail -n 40 "$(logfile "$svc")" >&2
  return 1
}

port_of() { case "$1" in temporal) echo "$TEMPORAL_PORT" ;; postgres) echo "$PG_PORT" ;; s3) echo "$S3_PORT" ;; label-studio) echo "$LABEL_STUDIO_PORT" ;; esac; }

start_one() {
  local svc="$1" pid timeout port
  port=$(port_of "$svc")
  case "$svc" in temporal) timeout=90 ;; label-studio) timeout=$LS_START_TIMEOUT ;; *) timeout=45 ;; esac
  if pid=$(svc_pid "$svc"); then
    log "$svc: already running (pid $pid)"
  elif pid=$(port_owner "$port") &&
       tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$(proc_name "$svc")"; then
    # pid file lost but our kind of server listens on our port: adopt it.
    log "$svc: adopting running $(proc_name "$svc") (pid $pid) found on port $port"
    echo "$pid" > "$(pidfile "$svc")"
  else
    if port_busy "$port" || { [ "$svc" = temporal ] && port_busy "$TEMPORAL_UI_PORT"; }; then
      err "$svc: port $port (or its UI port) is already in use by another process"
      local pat=":$port\b"; [ "$svc" = temporal ] && pat=":($port|$TEMPORAL_UI_PORT)\b"
      ss -ltnp 2>/dev/null | grep -E "$pat" >&2 || true
      return 1
    fi
    log "$svc: starting (log $(logfile "$svc"))"
    "launch_${svc//-/_}" || { err "$svc: launch failed"; return 1; }
  fi
  # Note: callers use `start_one || rc=1`, which disables set -e in here: check explicitly.
  wait_healthy "$svc" "$timeout" || return 1
  "setup_${svc//-/_}" || { err "$svc: post-start setup failed"; return 1; }
  log "$svc: up (pid $(svc_pid "$svc")) at $(addr_of "$svc")"
}

stop_one() {
  local svc="$1" pid sig=TERM target i
  if ! pid=$(svc_pid "$svc"); then log "$svc: not running"; return 0; fi
  # postgres: SIGINT = "fast" shutdown (SIGTERM would wait for every client to disconnect);
  # it stops its own children. Others: signal the whole session/process group.
  target="-$pid"
  if [ "$svc" = postgres ]; then sig=INT; target="$pid"; fi
  log "$svc: stopping (pid $pid, SIG$sig)"
  kill -s "$sig" -- "$target" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    log "$svc: still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$(pidfile "$svc")"
  # The listening socket can outlive the process by a moment: a restart must not find it busy.
  local port; port=$(port_of "$svc")
  for ((i = 0; i < 50; i++)); do port_busy "$port" || break; sleep 0.2; done
  log "$svc: stopped"
}

status_one() {
  local svc="$1" pid state=down
  if pid=$(svc_pid "$svc"); then
    healthy "$svc" && state=up || state=unhealthy
  else
    pid=-
  fi
  printf '%-12s %-9s pid=%-8s %-52s %s\n' "$svc" "$state" "$pid" "$(addr_of "$svc")" "$(dir_of "$svc")"
  [ "$state" = up ]
}

usage() { echo "usage: $0 start|stop|status|restart [temporal|postgres|s3|label-studio ...]" >&2; exit 2; }

[ $# -ge 1 ] || usage
cmd="$1"; shift
svcs=("$@"); [ ${#svcs[@]} -gt 0 ] || svcs=("${ALL_SERVICES[@]}")
for s in "${svcs[@]}"; do
  case "$s" in temporal | postgres | s3 | label-studio) ;; *) err "unknown service '$s'"; usage ;; esac
done
PGBIN=$(pg_bindir 2>/dev/null || true)

rc=0
case "$cmd" in
  start) for s in "${svcs[@]}"; do start_one "$s" || rc=1; done ;;
  stop) for s in "${svcs[@]}"; do stop_one "$s" || rc=1; done ;;
  restart)
    for s in "${svcs[@]}"; do stop_one "$s" || rc=1; done
    for s in "${svcs[@]}"; do start_one "$s" || rc=1; done ;;
  status) for s in "${svcs[@]}"; do status_one "$s" || rc=1; done ;;
  *) usage ;;
esac
exit "$rc"
