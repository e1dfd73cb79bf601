#!/usr/bin/env bash
# Install the real mail servers used by the real-MTA test suite (Debian/Ubuntu).
# Idempotent: does nothing but a dpkg check when everything is already installed.
set -euo pipefail

# libnet-ssleay-perl: swaks only *recommends* it, and without it swaks has no TLS at all.
# python3: start.sh uses it for port checks, banner waits and env.json.
PKGS=(postfix dovecot-core dovecot-lmtpd openssl swaks libnet-ssleay-perl python3 ca-certificates)

die() { echo "mta/install.sh: ERROR: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo)"
  SUDO="sudo"
fi

missing=()
for p in "${PKGS[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "mta/install.sh: all packages already installed: ${PKGS[*]}"
else
  echo "mta/install.sh: installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Never let Postfix's debconf configure a real mail system.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections \
    || die "debconf-set-selections failed"
  echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections || true
  # apt-get update only when the package lists are missing or do not know a package.
  need_update=0
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then need_update=1; break; fi
  done
  if [ "$need_update" -eq 1 ]; then
    $SUDO apt-get update -q || die "apt-get update failed"
  fi
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"; then
    die "apt-get install failed for: ${missing[*]}"
  fi
fi

# Verify the binaries we need are really there.
for b in postfix postconf postmap smtp-sink dovecot doveadm openssl swaks; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || die "binary '$b' not found after install"
done
[ -x /usr/lib/dovecot/lmtp ] || die "dovecot lmtp binary (/usr/lib/dovecot/lmtp) missing"
case "$(swaks --support 2>&1 || true)" in *"=== TLS supported"*) ;; *) die "swaks has no TLS support (Net::SSLeay missing)" ;; esac
echo "mta/install.sh: OK"
