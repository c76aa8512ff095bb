#!/usr/bin/env bash
# Stop the single-node SLURM cluster of start-local-slurm.sh (idempotent: nothing running is fine):
#   sudo workflow/cluster/stop-local-slurm.sh [--purge]
# Cancels its jobs, shuts slurmctld and slurmd down (scontrol shutdown), then slurmdbd, MariaDB
# and munged; removes our /etc/slurm/slurm.conf (putting back the one kept aside at start, if
# any). The folder (BACKDROP_SLURM_DIR, default /tmp/backdrop-slurm) stays, so that the next start
# keeps the accounting database and job history; --purge deletes it.
set -euo pipefail

DIR=${BACKDROP_SLURM_DIR:-/tmp/backdrop-slurm}
TIMEOUT=${BACKDROP_SLURM_TIMEOUT:-120}
MARKER="# backdrop-local-slurm: written by workflow/cluster/start-local-slurm.sh"
PURGE=0
case "${1:-}" in
  --purge) PURGE=1 ;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

say() { echo "stop-local-slurm: $*"; }

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n --preserve-env=BACKDROP_SLURM_DIR,BACKDROP_SLURM_TIMEOUT "$0" "$@"
  fi
  echo "stop-local-slurm: the daemons run as root: run it with sudo" >&2
  exit 3
fi
export PATH=$PATH:/usr/sbin:/sbin

if [ ! -d "$DIR" ]; then
  say "nothing to stop ($DIR does not exist)"
  exit 0
fi
exec 9>"$DIR/.lock"
flock -w "$TIMEOUT" 9 || { echo "stop-local-slurm: another start/stop holds $DIR/.lock" >&2; exit 1; }

CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF

pid_of() { # the pid of run/<name>.pid's daemon, if it runs (a pid reused since a reboot is not it)
  local p; p=$(cat "$DIR/run/$1.pid" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null \
    && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "${1/#mariadb/mariadbd}" ] && echo "$p"
}
wait_gone() { # name, seconds: wait for the daemon of run/<name>.pid to exit; then TERM, KILL it
  local name=$1 t=$2 pid end
  pid=$(pid_of "$name") || { rm -f "$DIR/run/$name.pid"; return 0; }
  end=$((SECONDS + t))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    end=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not stop: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$DIR/run/$name.pid"
}

# Jobs first (their processes outlive slurmd otherwise), then slurmctld and slurmd.
if pid_of slurmctld >/dev/null; then
  jobs=$(squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    say "cancelling jobs: ${jobs//$'\n'/ }"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    end=$((SECONDS + 30))
    while [ -n "$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null)" ] && [ $SECONDS -lt $end ]; do sleep 0.5; done
  fi
  say "stopping slurmctld and slurmd (scontrol shutdown)"
  scontrol shutdown >/dev/null 2>&1 || true
fi
wait_gone slurmctld 30
if pid=$(pid_of slurmd); then kill -TERM "$pid" 2>/dev/null || true; fi
wait_gone slurmd 30

if pid=$(pid_of slurmdbd); then
  say "stopping slurmdbd"
  kill -TERM "$pid" 2>/dev/null || true
fi
wait_gone slurmdbd 30

if pid=$(pid_of mariadb); then
  say "stopping MariaDB"
  mariadb-admin --no-defaults -S "$DIR/run/mariadb.sock" -u root shutdown >/dev/null 2>&1 \
    || kill -TERM "$pid" 2>/dev/null || true
fi
wait_gone mariadb 60

if pid_of munged >/dev/null; then
  say "stopping munged"
  munged -S "$DIR/run/munge.socket" --stop >/dev/null 2>&1 || kill -TERM "$(pid_of munged)" 2>/dev/null || true
fi
wait_gone munged 10

# /etc/slurm/slurm.conf: ours goes; a foreign one kept aside at start comes back.
if [ -f /etc/slurm/slurm.conf ] && grep -qF "$MARKER" /etc/slurm/slurm.conf; then
  rm -f /etc/slurm/slurm.conf
fi
if [ -f "$DIR/etc/system-slurm.conf.orig" ] && [ ! -e /etc/slurm/slurm.conf ]; then
  mv "$DIR/etc/system-slurm.conf.orig" /etc/slurm/slurm.conf
  say "put back the original /etc/slurm/slurm.conf"
fi

if [ "$PURGE" = 1 ]; then
  flock -u 9
  rm -rf "$DIR"
  say "stopped; deleted $DIR"
else
  say "stopped (state and job history kept in $DIR; --purge deletes it)"
fi
