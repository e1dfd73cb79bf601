#!/usr/bin/env bash
# Start PRIVATE instances of Postfix, Dovecot and smtp-sink on 127.0.0.1 high ports
# for rx-smtp's real-MTA test suite.  Usage: mta/start.sh [STATE_DIR]
#
#   STATE_DIR  default: /var/tmp/rx-smtp-mta-<hash of the checkout's path>, linked from
#              <repo root>/.mta (git-ignored); see mta/state-dir.sh.  Everything lives there:
#              TLS material, configs, Postfix queue, Maildirs, logs, PIDs, env.json.  The users
#              postfix, mail and nobody must be able to reach it.
#   MTA_PORT_BASE (env, default 20025): first port; all ports are BASE..BASE+35.
#
# Needs root (Postfix and Dovecot masters must start as root) and mta/install.sh.
# Writes STATE_DIR/env.json describing every port, path, user and scripted refusal.
set -euo pipefail

die() { echo "mta/start.sh: ERROR: $*" >&2; exit 1; }
log() { echo "mta/start.sh: $*"; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"
. "$SCRIPT_DIR/state-dir.sh"
T0=$(date +%s.%N)

[ "$(id -u)" -eq 0 ] || die "must run as root (Postfix/Dovecot masters start as root)"
for b in postfix postconf smtp-sink dovecot openssl python3 setpriv; do
  command -v "$b" >/dev/null 2>&1 || die "'$b' not found: run mta/install.sh first"
done
[ -x /usr/lib/dovecot/lmtp ] || die "dovecot-lmtpd missing: run mta/install.sh first"

# A previous run of this checkout is stopped first (idempotent restart), wherever its state was.
"$SCRIPT_DIR/stop.sh" "${1:-}" >/dev/null 2>&1 || true

if [ -n "${1:-}" ]; then
  STATE_DIR="$1"
  mkdir -p "$STATE_DIR"
else
  STATE_DIR="$(default_state_dir "$REPO_ROOT")"
  # /var/tmp is writable by everyone: never adopt a directory (or link) someone else planted there.
  if [ -e "$STATE_DIR" ] || [ -L "$STATE_DIR" ]; then
    [ -d "$STATE_DIR" ] && [ ! -L "$STATE_DIR" ] && [ "$(stat -c %u "$STATE_DIR")" -eq 0 ] \
      || die "$STATE_DIR exists and is not a directory owned by root: remove it"
  fi
  mkdir -p -m 0755 "$STATE_DIR"
  # Older runs kept the state in the checkout itself: stopped above, it is replaced by the link.
  [ -L "$REPO_ROOT/.mta" ] || [ ! -d "$REPO_ROOT/.mta" ] || rm -rf "$REPO_ROOT/.mta"
  ln -sfn "$STATE_DIR" "$REPO_ROOT/.mta"
fi
STATE_DIR="$(cd "$STATE_DIR" && pwd -P)"
chmod 0755 "$STATE_DIR"

# Postfix's master opens its lock file as postfix, Dovecot delivers as mail, smtp-sink writes its
# dumps as nobody: each must be able to walk down to STATE_DIR.
for u in postfix mail nobody; do
  setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups test -x "$STATE_DIR" \
    || die "user $u cannot reach $STATE_DIR (a parent directory is closed to it): choose a STATE_DIR outside it, or run without one"
done

# ---------------------------------------------------------------- ports
BASE="${MTA_PORT_BASE:-20025}"
P_PLAIN=$((BASE + 0)); P_SMTPS=$((BASE + 1)); P_SUBM=$((BASE + 2)); P_LMTP=$((BASE + 3)); P_LIMITED=$((BASE + 4))
S_DEFAULT=$((BASE + 10)); S_LMTP=$((BASE + 11)); S_HELO=$((BASE + 12)); S_NOPIPE=$((BASE + 13))
S_ABORT=$((BASE + 14)); S_STALL_CONNECT=$((BASE + 15)); S_STALL_RCPT=$((BASE + 16))
S_STALL_DATA=$((BASE + 17)); S_STALL_DOT=$((BASE + 18))
# fault sinks: flag q/Q/f/r x command MAIL/RCPT/DATA/. -> BASE+20 .. BASE+35
FAULT_FLAGS=(q Q f r)
FAULT_CMDS=(MAIL RCPT DATA .)
FAULT_KEYS=(mail rcpt data dot)
fault_port() { # flag_index cmd_index
  echo $((BASE + 20 + $1 * 4 + $2))
}
ALL_PORTS=($P_PLAIN $P_SMTPS $P_SUBM $P_LMTP $P_LIMITED $S_DEFAULT $S_LMTP $S_HELO $S_NOPIPE $S_ABORT
           $S_STALL_CONNECT $S_STALL_RCPT $S_STALL_DATA $S_STALL_DOT)
for fi in 0 1 2 3; do for ci in 0 1 2 3; do ALL_PORTS+=("$(fault_port $fi $ci)"); done; done

busy=$(python3 - "${ALL_PORTS[@]}" <<'PY'
import socket, sys
busy = []
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR like the servers: TIME_WAIT leftovers must not count as busy.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        busy.append(p)
    finally:
        s.close()
print(" ".join(busy))
PY
)
[ -z "$busy" ] || die "port(s) already in use on 127.0.0.1: $busy
  (another instance? run mta/stop.sh [STATE_DIR], or set MTA_PORT_BASE to move the range)"

# From here on, a failure stops whatever this run already started.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "mta/start.sh: start failed (exit $rc); stopping what was started. Logs: $STATE_DIR/log" >&2
    "$SCRIPT_DIR/stop.sh" "$STATE_DIR" >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- layout
TLS="$STATE_DIR/tls"; LOGS="$STATE_DIR/log"; RUN="$STATE_DIR/run"; MAIL="$STATE_DIR/mail"
DUMPS="$STATE_DIR/dump"
PF="$STATE_DIR/postfix"; PF_ETC="$PF/etc"; PF_SPOOL="$PF/spool"; PF_LIB="$PF/lib"
DV="$STATE_DIR/dovecot"; DV_CONF="$DV/dovecot.conf"; DV_USERS="$DV/users"
# Unix socket paths are limited to 107 bytes: keep Dovecot's base_dir short.
DV_RUN="$DV/run"
if [ ${#DV_RUN} -gt 60 ]; then
  DV_RUN="/tmp/rx-smtp-dovecot-$(printf '%s' "$STATE_DIR" | md5sum | cut -c1-10)"
fi
[ $(( ${#PF_SPOOL} + 13 )) -lt 107 ] || die "STATE_DIR path too long for unix sockets: $STATE_DIR"
mkdir -p "$TLS" "$LOGS" "$RUN" "$MAIL" "$PF_ETC" "$PF_SPOOL" "$PF_LIB" "$DV"
# Dovecot's mail processes (uid mail) must traverse to the Maildirs; keep the tree world-traversable.
chmod 0755 "$DV" "$PF"
chown mail:mail "$MAIL"; chmod 0755 "$MAIL"
# The over-quota user starts empty on every start (deterministic 4xx), and the known users'
# Maildirs are pre-created 0755 so Dovecot copies group/other read bits to new files.
rm -rf "$MAIL/example.test/full"
# new/cur/tmp too: a test that watches new/ before the first delivery must find Dovecot's folder,
# not create a root-owned one that Dovecot (mail_uid = mail) cannot rename into.
for u in user other full; do
  install -d -o mail -g mail -m 0755 "$MAIL/example.test" "$MAIL/example.test/$u" \
    "$MAIL/example.test/$u/new" "$MAIL/example.test/$u/cur" "$MAIL/example.test/$u/tmp"
done

# ---------------------------------------------------------------- TLS (throw-away CA)
if ! { [ -s "$TLS/ca.pem" ] && [ -s "$TLS/server.pem" ] && [ -s "$TLS/server.key" ] &&
       openssl x509 -checkend 86400 -noout -in "$TLS/server.pem" >/dev/null 2>&1 &&
       openssl verify -CAfile "$TLS/ca.pem" "$TLS/server.pem" >/dev/null 2>&1; }; then
  log "generating throw-away CA and server certificate (localhost, 127.0.0.1)"
  rm -f "$TLS"/*
  cat >"$TLS/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  (
    cd "$TLS"
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 825 \
      -subj "/O=rx-smtp test/CN=rx-smtp throw-away test CA" \
      -config openssl.cnf -extensions ca_ext 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
      -subj "/O=rx-smtp test/CN=localhost" -config openssl.cnf 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 825 -extfile openssl.cnf -extensions server_ext 2>/dev/null
    cat server.pem ca.pem >fullchain.pem
    rm -f server.csr
  ) || die "openssl failed to generate certificates"
  chmod 0600 "$TLS/ca.key" "$TLS/server.key"
  chmod 0644 "$TLS/ca.pem" "$TLS/server.pem" "$TLS/fullchain.pem"
fi

# ---------------------------------------------------------------- users
# passwd-file: user:{PLAIN}password:uid:gid:gecos:home:shell:extra_fields
# Passwords must not contain ':'.  Keep in sync with env.json below.
PW_USER='secret-password'
PW_OTHER='p@ss w0rd!#&*'
PW_FULL='secret-password'
cat >"$DV_USERS" <<EOF
user@example.test:{PLAIN}$PW_USER::::::
other@example.test:{PLAIN}$PW_OTHER::::::
full@example.test:{PLAIN}$PW_FULL::::::userdb_quota_rule=*:storage=1b
EOF
chown root:dovecot "$DV_USERS"; chmod 0640 "$DV_USERS"

# ---------------------------------------------------------------- default Postfix instance
# The default instance must allow our private config dir and our log folder. Nothing else is
# touched and the default instance is not started. With debconf "No configuration" Debian ships
# no /etc/postfix/main.cf at all: create it from Debian's own template in that case.
if [ ! -e /etc/postfix/main.cf ]; then
  log "no /etc/postfix/main.cf (Postfix installed with 'No configuration'): creating it from /usr/share/postfix/main.cf.debian"
  install -m 0644 /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
fi
add_to_list() { # param value : append value to a default-instance list parameter if absent
  local cur; cur="$(postconf -h "$1" 2>/dev/null || true)"
  case " $(echo "$cur" | tr ',' ' ') " in *" $2 "*) return 0 ;; esac
  if [ -z "$cur" ]; then postconf -e "$1 = $2"; else postconf -e "$1 = $cur, $2"; fi
}
add_to_list alternate_config_directories "$PF_ETC"
add_to_list maillog_file_prefixes "$LOGS"

# ---------------------------------------------------------------- private Postfix instance
# smtpd_forbid_bare_newline: since 3.7.10 "yes" is only an alias for "normalize" (bare LF is
# *accepted* and turned into CRLF); "reject" is the value that refuses bare LF. Older 3.7.9
# only knows yes/no, where "yes" rejects.
BARE_NL_MODE=""
# (no "postconf -d | grep -q": with pipefail, grep -q exiting early makes the pipeline fail)
if [ -n "$(postconf -d 2>/dev/null | sed -n "s/^smtpd_forbid_bare_newline = //p")" ]; then
  BARE_NL_MODE=yes
  PF_VER="$(postconf -dh mail_version)"   # e.g. 3.7.11
  case "$PF_VER" in
    3.7.[0-9]|3.8.[0-4]) ;;   # yes/no only ("yes" rejects)
    *) BARE_NL_MODE=reject ;;  # 3.7.10+, 3.8.5+, 3.9+: "yes" would mean normalize
  esac
fi

cp /usr/share/postfix/main.cf.debian "$PF_ETC/main.cf"
REFUSALS='check_recipient_access inline:{ {reject@example.test=REJECT 5.1.1 no such user (scripted refusal)} {tempfail@example.test=DEFER_IF_PERMIT 4.2.0 try again later (scripted refusal)} }'
# DEFER (not DEFER_IF_PERMIT) for the sender: DEFER_IF_PERMIT only takes effect at RCPT, so MAIL would get 250.
SENDER_REFUSALS='check_sender_access inline:{ {reject-sender@example.test=REJECT 5.7.1 sender refused (scripted refusal)} {tempfail-sender@example.test=DEFER 4.7.1 sender deferred (scripted refusal)} }'
PF_PARAMS=(
  "queue_directory = $PF_SPOOL"
  "data_directory = $PF_LIB"
  "maillog_file = $LOGS/postfix.log"
  "maillog_file_prefixes = /var, /dev/stdout, $LOGS"
  "multi_instance_name = postfix-rxsmtp"
  "syslog_name = postfix-rxsmtp"
  "myhostname = mx.rx-smtp.test"
  "mydomain = rx-smtp.test"
  "myorigin = \$myhostname"
  "mydestination ="
  "inet_interfaces = 127.0.0.1"
  "inet_protocols = ipv4"
  "mynetworks = 127.0.0.0/8"
  "relay_domains ="
  "relayhost ="
  "alias_maps ="
  "alias_database ="
  "local_recipient_maps ="
  "default_transport = discard:"
  "relay_transport = discard:"
  "local_transport = discard:"
  "virtual_mailbox_domains = example.test"
  "virtual_mailbox_maps = inline:{ {user@example.test=ok} {other@example.test=ok} {full@example.test=ok} }"
  "virtual_transport = lmtp:inet:127.0.0.1:$P_LMTP"
  "message_size_limit = 10485760"
  "mailbox_size_limit = 0"
  "virtual_mailbox_limit = 0"
  "smtpd_banner = \$myhostname ESMTP Postfix (rx-smtp test instance)"
  "smtpd_peername_lookup = no"
  "smtpd_timeout = 60s"
  "smtpd_starttls_timeout = 60s"
  "smtpd_error_sleep_time = 0"
  "smtpd_soft_error_limit = 1000"
  "smtpd_hard_error_limit = 1000"
  "smtpd_junk_command_limit = 100000"
  "smtpd_recipient_limit = 1000"
  "smtpd_delay_reject = no"
  "access_map_reject_code = 550"
  "rxsmtp_rcpt_refusals = $REFUSALS"
  "rxsmtp_sender_refusals = $SENDER_REFUSALS"
  "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
  "smtpd_sender_restrictions = \$rxsmtp_sender_refusals, permit"
  "smtpd_recipient_restrictions = \$rxsmtp_rcpt_refusals, permit"
  "smtpd_tls_cert_file = $TLS/fullchain.pem"
  "smtpd_tls_key_file = $TLS/server.key"
  "smtpd_tls_security_level = may"
  "smtpd_tls_loglevel = 1"
  "smtpd_tls_received_header = yes"
  "smtpd_tls_session_cache_database ="
  "smtp_tls_session_cache_database ="
  "smtp_tls_security_level = none"
  "lmtp_tls_security_level = none"
  "smtpd_sasl_type = dovecot"
  "smtpd_sasl_path = private/auth"
  "smtpd_sasl_auth_enable = no"
  "maximal_queue_lifetime = 10m"
  "bounce_queue_lifetime = 10m"
  "queue_run_delay = 30s"
  "minimal_backoff_time = 30s"
  "maximal_backoff_time = 60s"
  "default_process_limit = 200"
  # The anvil limits of the 'limited' listener count per 5 s, so a test that crosses them runs in seconds.
  "anvil_rate_time_unit = 5s"
)
if [ -n "$BARE_NL_MODE" ]; then
  # The default exclusion is $mynetworks, i.e. our own 127.0.0.0/8 clients: exclude nobody.
  PF_PARAMS+=("smtpd_forbid_bare_newline = $BARE_NL_MODE" "smtpd_forbid_bare_newline_exclusions =")
else
  log "NOTE: this Postfix has no smtpd_forbid_bare_newline; bare-LF rejection is not configured"
fi
postconf -c "$PF_ETC" -e "${PF_PARAMS[@]}" || die "postconf -e failed on $PF_ETC/main.cf"

# master.cf: the listeners, then the internal services shared with bench/postfix.sh (no chroot).
cat >"$PF_ETC/master.cf" <<EOF
# rx-smtp private Postfix instance (generated by mta/start.sh; edits are overwritten)
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$P_PLAIN inet n - n - - smtpd
  -o syslog_name=postfix-rxsmtp/plain
127.0.0.1:$P_SMTPS inet n - n - - smtpd
  -o syslog_name=postfix-rxsmtp/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
127.0.0.1:$P_SUBM inet n - n - - smtpd
  -o syslog_name=postfix-rxsmtp/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sender_restrictions=\$rxsmtp_sender_refusals,permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=\$rxsmtp_rcpt_refusals,permit_sasl_authenticated,reject
127.0.0.1:$P_LIMITED inet n - n - - smtpd
  -o syslog_name=postfix-rxsmtp/limited
  -o smtpd_client_event_limit_exceptions=
  -o smtpd_client_connection_count_limit=2
  -o smtpd_client_message_rate_limit=20
EOF
cat "$SCRIPT_DIR/master-services.cf" >>"$PF_ETC/master.cf"

# Queue/data directories with Postfix's ownership (data_directory must belong to postfix).
# set-permissions also creates the queue subdirectories. It takes ~1 s: only when needed.
if [ ! -d "$PF_SPOOL/private" ] || [ ! -d "$PF_SPOOL/maildrop" ] || [ "$(stat -c %U "$PF_LIB")" != postfix ]; then
  postfix -c "$PF_ETC" set-permissions >"$LOGS/postfix-set-permissions.log" 2>&1 \
    || die "postfix -c $PF_ETC set-permissions failed (see $LOGS/postfix-set-permissions.log)"
fi

# ---------------------------------------------------------------- Dovecot (private config)
mkdir -p "$DV_RUN"
cat >"$DV_CONF" <<EOF
# rx-smtp private Dovecot (generated by mta/start.sh). Does NOT include /etc/dovecot/conf.d.
instance_name = rx-smtp-dovecot
hostname = lmtp.rx-smtp.test
login_greeting = Dovecot LMTP (rx-smtp test instance) ready.
base_dir = $DV_RUN
state_dir = $DV/state
protocols = lmtp
listen = 127.0.0.1
log_path = $LOGS/dovecot.log
info_log_path = $LOGS/dovecot.log
debug_log_path = $LOGS/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "

ssl = yes
ssl_cert = <$TLS/fullchain.pem
ssl_key = <$TLS/server.key
ssl_dh = </usr/share/dovecot/dh.pem

disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256
auth_username_format = %Lu
auth_verbose = yes
# No 2 s pause after a failed login: the suite tries a bad password with every mechanism.
auth_failure_delay = 0

first_valid_uid = 8
mail_uid = mail
mail_gid = mail
mail_location = maildir:$MAIL/%d/%n
# Store messages with CRLF, as they came over the wire: the suite compares delivered bytes exactly.
mail_save_crlf = yes
mail_plugins = quota
lmtp_rcpt_check_quota = yes
# over quota -> 452 4.2.2 (not 552 5.2.2). A main setting in 2.3, ignored inside plugin {}.
quota_full_tempfail = yes
recipient_delimiter = +

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu $DV_USERS
}
# passwd-file userdb: known users are delivered; unknown ones get 550 5.1.1 over LMTP.
userdb {
  driver = passwd-file
  args = username_format=%Lu $DV_USERS
  default_fields = home=$MAIL/%d/%n
}
plugin {
  quota = maildir:User quota
}

service auth {
  unix_listener $PF_SPOOL/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
  unix_listener auth-userdb {
    mode = 0600
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $P_LMTP
  }
}
EOF
mkdir -p "$DV/state"
dovecot -c "$DV_CONF" >"$LOGS/dovecot-start.log" 2>&1 \
  || { cat "$LOGS/dovecot-start.log" >&2; tail -n 20 "$LOGS/dovecot.log" >&2 2>/dev/null; die "dovecot failed to start"; }
echo "$DV_CONF" >"$RUN/dovecot.conf.path"

# ---------------------------------------------------------------- Postfix start
# Empty the queue (e.g. deferred mail for the over-quota user) so every run starts clean.
postsuper -c "$PF_ETC" -d ALL >/dev/null 2>&1 || true
postfix -c "$PF_ETC" start >"$LOGS/postfix-start.log" 2>&1 \
  || { cat "$LOGS/postfix-start.log" >&2; tail -n 20 "$LOGS/postfix.log" >&2 2>/dev/null; die "postfix -c $PF_ETC start failed"; }

# ---------------------------------------------------------------- smtp-sink instances
# Each sink appends what it received (X-Client-Proto, X-Helo-Args, X-Mail-Args, X-Rcpt-Args, then
# the message) to DUMPS/sink-NAME.eml (-D), so a test can check the server's side. It runs as nobody.
install -d -o nobody -m 0755 "$DUMPS"; rm -f "$DUMPS"/sink-*.eml
start_sink() { # name port args...
  local name="$1" port="$2"; shift 2
  ( cd "$RUN" && exec setsid smtp-sink -u nobody -h "sink-$name.rx-smtp.test" -D "$DUMPS/sink-$name.eml" \
      "$@" "127.0.0.1:$port" 256 \
      </dev/null >"$LOGS/sink-$name.log" 2>&1 ) &
  echo "$!" >"$RUN/sink-$name.pid"
}
start_sink default "$S_DEFAULT"
start_sink lmtp "$S_LMTP" -L
start_sink heloOnly "$S_HELO" -e
start_sink noPipelining "$S_NOPIPE" -p
start_sink abortMidData "$S_ABORT" -A 0
start_sink stall-connect "$S_STALL_CONNECT" -W CONNECT:3600
start_sink stall-rcpt "$S_STALL_RCPT" -W RCPT:3600
start_sink stall-data "$S_STALL_DATA" -w 3600
start_sink stall-dot "$S_STALL_DOT" -W .:3600
for fi in 0 1 2 3; do
  for ci in 0 1 2 3; do
    start_sink "fault-${FAULT_FLAGS[$fi]}-${FAULT_KEYS[$ci]}" "$(fault_port $fi $ci)" \
      "-${FAULT_FLAGS[$fi]}" "${FAULT_CMDS[$ci]}"
  done
done

# A sink that exits at once (bad flag, port taken) is reported now, with its log.
sleep 0.3
for f in "$RUN"/sink-*.pid; do
  pid="$(cat "$f")"; name="$(basename "$f" .pid)"
  st="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)"
  if [ -z "$st" ] || [ "$st" = Z ]; then
    die "$name exited at once: $(tr '\n' ' ' <"$LOGS/$name.log")"
  fi
done

# ---------------------------------------------------------------- wait for banners
# Every port must answer a 220 greeting (the implicit-TLS port after a verified handshake).
# The stall-connect sink delays its greeting on purpose: only its TCP accept is checked.
python3 - "$TLS/ca.pem" "$P_SMTPS" "$S_STALL_CONNECT" "${ALL_PORTS[@]}" <<'PY' || die "not every service answered (see $LOGS)"
import socket, ssl, sys, time
ca, smtps, stall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ports = [int(p) for p in sys.argv[4:]]
deadline = time.time() + 30
pending = set(ports)
last = {}
while pending and time.time() < deadline:
    for p in sorted(pending):
        try:
            s = socket.create_connection(("127.0.0.1", p), timeout=2)
            if p == stall:
                s.close(); pending.discard(p); continue
            if p == smtps:
                ctx = ssl.create_default_context(cafile=ca)
                s = ctx.wrap_socket(s, server_hostname="localhost")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
            s.close()
            if data.startswith(b"220"):
                pending.discard(p)
            else:
                last[p] = data[:80]
        except Exception as e:  # not up yet
            last[p] = repr(e)
    if pending:
        time.sleep(0.1)
if pending:
    for p in sorted(pending):
        print(f"port {p}: no 220 banner: {last.get(p)}", file=sys.stderr)
    sys.exit(1)
PY

# ---------------------------------------------------------------- env.json
python3 - "$STATE_DIR/env.json" <<PY
import json, sys
fault_keys = ["mail", "rcpt", "data", "dot"]
def fault(fi):
    return {k: $BASE + 20 + fi * 4 + ci for ci, k in enumerate(fault_keys)}
env = {
  "stateDir": "$STATE_DIR",
  "host": "127.0.0.1",
  "ca": "$TLS/ca.pem",
  "tls": {"ca": "$TLS/ca.pem", "cert": "$TLS/server.pem", "key": "$TLS/server.key",
          "names": ["localhost", "127.0.0.1"]},
  "postfix": {
    "plain": $P_PLAIN, "implicitTls": $P_SMTPS, "submission": $P_SUBM, "limited": $P_LIMITED,
    "limits": {"connectionsPerClient": 2, "messagesPerClient": 20, "perSeconds": 5},
    "hostname": "mx.rx-smtp.test",
    "configDir": "$PF_ETC", "log": "$LOGS/postfix.log",
    "messageSizeLimit": 10485760,
    "forbidBareNewline": "${BARE_NL_MODE:-unsupported}",
    "notes": {
      "plain": "STARTTLS offered (optional), no AUTH; accepts any recipient from 127.0.0.0/8",
      "implicitTls": "TLS from the first byte; AUTH offered (optional); accepts any recipient",
      "submission": "STARTTLS required before AUTH; AUTH required before MAIL (MAIL unauthenticated -> 554 5.7.1)",
      "limited": "anvil limits per client address, loopback not exempt: 2 connections at once (421 4.7.0 too many connections), 20 MAIL per 5 s (450 4.7.1 too much mail)",
      "delivery": "mail for the local users below goes to Dovecot over LMTP -> maildir; every other domain is accepted and discarded; unknown @example.test users -> 550 5.1.1 at RCPT"
    }
  },
  "dovecot": {"lmtp": $P_LMTP, "config": "$DV_CONF", "log": "$LOGS/dovecot.log", "starttls": True,
              "authMechanisms": ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]},
  "maildir": "$MAIL",
  "maildirOf": {"user@example.test": "$MAIL/example.test/user",
                "other@example.test": "$MAIL/example.test/other",
                "full@example.test": "$MAIL/example.test/full"},
  "users": {"user@example.test": "$PW_USER", "other@example.test": "$PW_OTHER",
            "full@example.test": "$PW_FULL"},
  "addresses": {
    "deliver": ["user@example.test", "other@example.test"],
    "overQuota": "full@example.test",
    "unknown": "nobody@example.test",
    "reject": "reject@example.test",
    "tempfail": "tempfail@example.test",
    "rejectSender": "reject-sender@example.test",
    "tempfailSender": "tempfail-sender@example.test",
    "discard": "anyone@discard.test"
  },
  "expect": {
    "postfix": {"RCPT reject@example.test": "550 5.1.1", "RCPT tempfail@example.test": "450 4.2.0",
                "RCPT nobody@example.test": "550 5.1.1 (not in virtual_mailbox_maps)",
                "MAIL reject-sender@example.test": "550 5.7.1",
                "MAIL tempfail-sender@example.test": "450 4.7.1",
                "submission MAIL before STARTTLS": "530 5.7.0", "submission MAIL before AUTH": "554 5.7.1",
                "submission AUTH before STARTTLS": "AUTH not advertised", "bad password": "535 5.7.8",
                "MAIL SIZE=10485761+": "552 5.3.4", "bare LF in DATA": "550 5.5.2 then disconnect"},
    "dovecotLmtp": {"user@example.test": "RCPT 250, 250 after DATA", "other@example.test": "RCPT 250, 250 after DATA",
                    "nobody@example.test": "RCPT 550 5.1.1",
                    "full@example.test": "RCPT 250, then 452 4.2.2 (over quota) after DATA"}
  },
  "sinks": {
    "default": $S_DEFAULT, "lmtp": $S_LMTP, "heloOnly": $S_HELO, "noPipelining": $S_NOPIPE,
    "abortMidData": $S_ABORT,
    "stall": {"connect": $S_STALL_CONNECT, "rcpt": $S_STALL_RCPT, "data": $S_STALL_DATA, "dot": $S_STALL_DOT},
    "faults": {"q": fault(0), "Q": fault(1), "f": fault(2), "r": fault(3)},
    "notes": {
      "q": "disconnect without reply after the command", "Q": "421 then disconnect",
      "f": "5xx reply (implies no PIPELINING)", "r": "4xx reply (implies no PIPELINING)",
      "dot": "the end-of-data '.' command", "abortMidData": "smtp-sink -A 0: 354, then 550 and stop reading",
      "stall": "reply delayed 3600 s (connect: greeting; data: reply to DATA; dot: reply to end of data)"
    }
  },
  "logs": "$LOGS",
  "sinkDumps": "$DUMPS"
}
with open(sys.argv[1], "w") as f:
    json.dump(env, f, indent=2)
    f.write("\n")
PY

T1=$(date +%s.%N)
log "all services up in $(python3 -c "print(round($T1 - $T0, 1))") s; env: $STATE_DIR/env.json"
