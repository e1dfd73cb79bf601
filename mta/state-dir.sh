# Sourced by mta/start.sh and mta/stop.sh: where the private instances keep their state.
#
# Not in the checkout: Postfix (user postfix), Dovecot's deliveries (user mail) and smtp-sink
# (user nobody) must reach it, and a clone in /root or in a `mktemp -d` folder (mode 0700) is
# closed to them ("open lock file …/master.lock: Permission denied"). Each checkout gets its own
# directory, named after its path, and <repo>/.mta is a link to it so the suite finds env.json.

# The default state directory of the checkout at $1 (a physical path).
default_state_dir() {
  echo "/var/tmp/rx-smtp-mta-$(printf '%s' "$1" | sha256sum | cut -c1-12)"
}

# The state directory stop.sh should look at when none is given: the one <repo>/.mta points to
# (or <repo>/.mta itself, as older start.sh runs made it), else this checkout's default.
current_state_dir() { # repo_root
  if [ -d "$1/.mta" ]; then (cd "$1/.mta" && pwd -P); else default_state_dir "$1"; fi
}
