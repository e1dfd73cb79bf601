#!/usr/bin/env bash
# Stop the private Postfix, Dovecot and smtp-sink instances started by mta/start.sh.
# Usage: mta/stop.sh [STATE_DIR]   (default: the directory <repo root>/.mta links to, see
# mta/state-dir.sh). Idempotent; exits 0 when nothing runs. The state directory (queue, Maildirs,
# logs, certificates) is left in place.
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"
. "$SCRIPT_DIR/state-dir.sh"
STATE_DIR="${1:-$(current_state_dir "$REPO_ROOT")}"
case "$STATE_DIR" in /*) ;; *) STATE_DIR="$PWD/$STATE_DIR" ;; esac
# The physical path: the daemons' command lines and working directories name that one.
STATE_DIR="$(cd "$STATE_DIR" 2>/dev/null && pwd -P || echo "${STATE_DIR%/}")"
log() { echo "mta/stop.sh: $*"; }

PF_ETC="$STATE_DIR/postfix/etc"
DV_CONF="$STATE_DIR/dovecot/dovecot.conf"
RUN="$STATE_DIR/run"

# A killed daemon is re-parented to PID 1, which may reap it late: a zombie counts as gone.
running() { # pid
  local st
  st="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)"
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
wait_gone() { # pid... : wait up to 5 s, then SIGKILL
  local i pid alive
  for i in $(seq 1 50); do
    alive=0
    for pid in "$@"; do running "$pid" && alive=1; done
    [ "$alive" -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
}

pids=()   # everything we signalled; waited for together at the end
is_comm() { grep -q "^$2" "/proc/$1/comm" 2>/dev/null; }

# --- Postfix: `postfix stop` returns before master has exited, so wait for its PID too.
if [ -f "$PF_ETC/main.cf" ] && command -v postfix >/dev/null 2>&1; then
  spool="$(postconf -c "$PF_ETC" -h queue_directory 2>/dev/null || true)"
  mpid="$( { tr -dc 0-9 <"$spool/pid/master.pid"; } 2>/dev/null || true)"
  if postfix -c "$PF_ETC" status >/dev/null 2>&1; then
    postfix -c "$PF_ETC" stop >/dev/null 2>&1 && log "postfix stopping" || log "postfix stop failed (will kill)"
  fi
  if [ -n "$mpid" ] && running "$mpid" && is_comm "$mpid" master; then pids+=("$mpid"); fi
fi

# --- Dovecot
if [ -f "$DV_CONF" ]; then
  base_dir="$(sed -n 's/^base_dir = //p' "$DV_CONF" | head -n1)"
  pid="$( { tr -dc 0-9 <"$base_dir/master.pid"; } 2>/dev/null || true)"
  if [ -n "$pid" ] && running "$pid" && is_comm "$pid" dovecot; then
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid") && log "dovecot stopping"
  fi
fi

# --- smtp-sink instances (PID files). They hold no state: SIGKILL is fine.
n=0
for f in "$RUN"/sink-*.pid; do
  [ -f "$f" ] || continue
  pid="$(tr -dc 0-9 <"$f")"
  if [ -n "$pid" ] && running "$pid" && is_comm "$pid" smtp-sink; then
    kill -KILL "$pid" 2>/dev/null && pids+=("$pid") && n=$((n + 1))
  fi
  rm -f "$f"
done
[ "$n" -eq 0 ] || log "$n smtp-sink(s) stopping"
[ "${#pids[@]}" -eq 0 ] || wait_gone "${pids[@]}"

# --- Leftovers (e.g. the state dir was deleted while things ran): only the three daemon
# binaries, and only when their working directory or command line points into STATE_DIR.
left=()
for p in /proc/[0-9]*; do
  pid="${p#/proc/}"
  exe="$(readlink "$p/exe" 2>/dev/null)" || continue
  case "$exe" in
    /usr/lib/postfix/sbin/master*|/usr/sbin/dovecot*|/usr/sbin/smtp-sink*) ;;
    *) continue ;;
  esac
  cwd="$(readlink "$p/cwd" 2>/dev/null || true)"
  cmd="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null || true)"
  case "$cwd" in "$STATE_DIR"|"$STATE_DIR"/*) left+=("$pid"); continue ;; esac
  case "$cmd" in *"$STATE_DIR/"*) left+=("$pid") ;; esac
done
if [ "${#left[@]}" -gt 0 ]; then
  kill -TERM "${left[@]}" 2>/dev/null || true
  sleep 0.2
  wait_gone "${left[@]}"
  log "stopped ${#left[@]} leftover process(es): ${left[*]}"
fi

# --- Children (smtpd, lmtp, ...) may hold the listening sockets a moment longer than their
# master: wait (max 10 s) until every port recorded in env.json can be bound again.
if [ -f "$STATE_DIR/env.json" ] && command -v python3 >/dev/null 2>&1; then
  python3 - "$STATE_DIR/env.json" <<'PY' || log "WARNING: some ports are still busy (see: ss -ltnp)"
import json, socket, sys, time
env = json.load(open(sys.argv[1]))
ports = set()
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, int) and not isinstance(x, bool) and 1024 < x < 65536 and k != "messageSizeLimit":
                ports.add(x)
            else:
                walk(x)
walk({"p": env.get("postfix", {}), "d": env.get("dovecot", {}), "s": env.get("sinks", {})})
deadline = time.time() + 10
while True:
    busy = []
    for p in sorted(ports):
        s = socket.socket()
        # SO_REUSEADDR like the servers: TIME_WAIT leftovers must not count as busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            busy.append(p)
        finally:
            s.close()
    if not busy:
        sys.exit(0)
    if time.time() > deadline:
        print("busy:", busy, file=sys.stderr)
        sys.exit(1)
    time.sleep(0.1)
PY
fi
exit 0
