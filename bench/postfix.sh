#!/usr/bin/env bash
# A private Postfix instance for the bench (W2): one smtpd on 127.0.0.1:PORT, everything
# accepted and discarded, no TLS, no throttling. Never touches a running system MTA.
#
#   bench/postfix.sh start DIR PORT     (needs root; ~2 s)
#   bench/postfix.sh stop DIR
#
# Differences from mta/start.sh, on purpose: in_flow_delay = 0 (Postfix would otherwise pause
# each new message up to 1 s while its queue manager lags: that measures Postfix, not the
# client), no STARTTLS (rx-smtp's opportunistic upgrade would change the workload), no Dovecot.
set -euo pipefail
die() { echo "bench/postfix.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (the Postfix master starts as root)"
CMD="${1:?start|stop}"; DIR="${2:?DIR}"; mkdir -p "$DIR"; DIR="$(cd "$DIR" && pwd)"
ETC="$DIR/etc"; SPOOL="$DIR/spool"; DATA="$DIR/lib"; LOG="$DIR/log"

if [ "$CMD" = stop ]; then
  if [ -f "$ETC/main.cf" ] && postfix -c "$ETC" status >/dev/null 2>&1; then
    postfix -c "$ETC" stop >/dev/null 2>&1 || true
    for _ in $(seq 50); do postfix -c "$ETC" status >/dev/null 2>&1 || break; sleep 0.1; done
  fi
  exit 0
fi
[ "$CMD" = start ] || die "usage: bench/postfix.sh start DIR PORT | stop DIR"
PORT="${3:?PORT}"
command -v postfix >/dev/null || die "postfix not installed (apt-get install postfix)"
"$0" stop "$DIR"
mkdir -p "$ETC" "$SPOOL" "$DATA" "$LOG"

# The default instance must list our config and log folders (same rule as mta/start.sh).
[ -e /etc/postfix/main.cf ] || install -m 0644 /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
add_to_list() {
  local cur; cur="$(postconf -h "$1" 2>/dev/null || true)"
  case " $(echo "$cur" | tr ',' ' ') " in *" $2 "*) return 0 ;; esac
  if [ -z "$cur" ]; then postconf -e "$1 = $2"; else postconf -e "$1 = $cur, $2"; fi
}
add_to_list alternate_config_directories "$ETC"
add_to_list maillog_file_prefixes "$LOG"

cp /usr/share/postfix/main.cf.debian "$ETC/main.cf"
postconf -c "$ETC" -e \
  "queue_directory = $SPOOL" "data_directory = $DATA" \
  "maillog_file = $LOG/postfix.log" "maillog_file_prefixes = $LOG" \
  "multi_instance_name = postfix-rxsmtp-bench" "syslog_name = postfix-rxsmtp-bench" \
  "myhostname = bench.rx-smtp.test" "mydomain = rx-smtp.test" "mydestination =" \
  "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" \
  "relay_domains =" "relayhost =" "alias_maps =" "alias_database =" "local_recipient_maps =" \
  "default_transport = discard:" "relay_transport = discard:" "local_transport = discard:" \
  "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
  "smtpd_recipient_restrictions = permit" \
  "smtpd_tls_security_level = none" "smtp_tls_security_level = none" \
  "smtpd_peername_lookup = no" "smtpd_error_sleep_time = 0" "smtpd_recipient_limit = 1000" \
  "in_flow_delay = 0" "message_size_limit = 0" "mailbox_size_limit = 0" \
  "maximal_queue_lifetime = 10m" "bounce_queue_lifetime = 10m" "default_process_limit = 100"
cat >"$ETC/master.cf" <<MASTER
127.0.0.1:$PORT inet n - n - - smtpd
MASTER
cat "$(dirname "${BASH_SOURCE[0]}")/../mta/master-services.cf" >>"$ETC/master.cf"
if [ ! -d "$SPOOL/private" ] || [ "$(stat -c %U "$DATA")" != postfix ]; then
  postfix -c "$ETC" set-permissions >"$LOG/set-permissions.log" 2>&1 || die "set-permissions failed ($LOG)"
fi
postfix -c "$ETC" start >"$LOG/start.log" 2>&1 || { cat "$LOG/start.log" >&2; tail -n 20 "$LOG/postfix.log" >&2 || true; die "start failed"; }
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then exit 0; fi
  sleep 0.1
done
die "Postfix did not listen on 127.0.0.1:$PORT"
