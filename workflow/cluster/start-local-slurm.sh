#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the tests, CI and trying
# workflow/profiles/slurm on a laptop:
#   sudo workflow/cluster/start-local-slurm.sh     # start (again: a no-op while it runs)
#   sudo workflow/cluster/stop-local-slurm.sh      # stop (--purge: also delete its folder)
#
# Debian/Ubuntu only (apt). Installs what is missing (slurm-wlm, slurmdbd, munge,
# mariadb-server), then runs, as root and without systemd or cgroups (works in a container):
# its own munged, MariaDB, slurmdbd, slurmctld and slurmd, every file of theirs (config, state,
# spool, logs, pid files, sockets, the accounting database) under one folder:
#   BACKDROP_SLURM_DIR        (default /tmp/backdrop-slurm)
# The node is this machine (`hostname -s`, CPUs from nproc, memory from /proc/meminfo less a
# margin, no GPUs/GRES); partitions `cpu` (default) and `gpu` as workflow/profiles/slurm names
# them, both on this node. Accounting (slurmdbd + MariaDB) is on: the Snakemake SLURM plugin
# asks `sacct` for job states, and every job shows in `sacct`.
#
# Clients (sbatch, sacct, sinfo; the plugin calls them without options) find the cluster through
# /etc/slurm/slurm.conf, which this script writes (marked as ours; a foreign file there is kept
# in $BACKDROP_SLURM_DIR/etc/system-slurm.conf.orig and put back by the stop script). With
#   BACKDROP_SLURM_SYSTEM_CONF=0
# /etc/slurm is left alone and clients need `export SLURM_CONF=$BACKDROP_SLURM_DIR/etc/slurm.conf`.
# Other settings: BACKDROP_SLURM_DB_PORT (MariaDB's TCP port on 127.0.0.1, default 16819),
# BACKDROP_SLURM_TIMEOUT (seconds to wait for each daemon, default 120), BACKDROP_SLURM_USERS
# (more users to register in accounting; root and $SUDO_USER always are).
# Slurm's own ports are the standard 6817 (slurmctld), 6818 (slurmd), 6819 (slurmdbd).
#
# Exit status: 0 the cluster is up (the node idle); 3 it cannot run here (no apt, packages not
# installable, not root and no password-less sudo): the message says why (tests skip on 3);
# anything else: a daemon did not come up; the message names its log file.
set -euo pipefail

DIR=${BACKDROP_SLURM_DIR:-/tmp/backdrop-slurm}
DB_PORT=${BACKDROP_SLURM_DB_PORT:-16819}
TIMEOUT=${BACKDROP_SLURM_TIMEOUT:-120}
SYSTEM_CONF=${BACKDROP_SLURM_SYSTEM_CONF:-1}
CLUSTER=backdrop
ACCOUNT=backdrop
MARKER="# backdrop-local-slurm: written by workflow/cluster/start-local-slurm.sh"
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "start-local-slurm: $*"; }
unavailable() { echo "start-local-slurm: cannot run a local SLURM cluster here: $*" >&2; exit 3; }
fail() { echo "start-local-slurm: ERROR: $*" >&2; exit 1; }

# --- root -------------------------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n --preserve-env=BACKDROP_SLURM_DIR,BACKDROP_SLURM_DB_PORT,BACKDROP_SLURM_TIMEOUT,BACKDROP_SLURM_SYSTEM_CONF,BACKDROP_SLURM_USERS \
      "$0" "$@"
  fi
  unavailable "the daemons run as root: run it with sudo (password-less sudo is not available)"
fi

# --- packages ---------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to install ${missing[*]} (Debian/Ubuntu only)"
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp /tmp/backdrop-slurm-apt.XXXXXX)
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
    if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >>"$apt_log" 2>&1; then
      tail -n 20 "$apt_log" >&2
      unavailable "apt-get could not install ${missing[*]} (log: $apt_log)"
    fi
  fi
  rm -f "$apt_log"
fi
for c in munged mungekey slurmctld slurmd slurmdbd sbatch sacct sacctmgr sinfo scontrol \
  mariadbd mariadb-install-db mariadb mariadb-admin; do
  command -v "$c" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$c" >/dev/null 2>&1 \
    || unavailable "'$c' is missing after installing ${PACKAGES[*]}"
done
export PATH=$PATH:/usr/sbin:/sbin

# --- the folder ---------------------------------------------------------------------------------
mkdir -p "$DIR"
chmod 755 "$DIR"  # clients of other users reach the munge socket under run/
mkdir -p "$DIR"/{etc,run,log,state/ctld,state/d,mysql,munge}
chmod 755 "$DIR"/run
chmod 700 "$DIR"/munge "$DIR"/mysql
chmod 755 "$DIR"/etc  # slurm.conf, plugstack.conf: read by every client; the secrets are 600
exec 9>"$DIR/.lock"
flock -w "$TIMEOUT" 9 || fail "another start/stop holds $DIR/.lock"

CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF
HOST=$(hostname -s)
SOCK=$DIR/run/munge.socket
DBSOCK=$DIR/run/mariadb.sock

alive() { # pid file -> its daemon runs? (named as the file: a pid reused since a reboot is not it)
  local p; p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null \
    && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$(basename "$1" .pid | sed 's/^mariadb$/mariadbd/')" ]
}
wait_for() { # seconds, description, log, command...
  local t=$1 what=$2 log=$3; shift 3
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      [ -f "$log" ] && { echo "--- last lines of $log:" >&2; tail -n 15 "$log" >&2; }
      fail "$what did not come up within ${t}s; see $log"
    fi
    sleep 0.5
  done
}

# --- configuration: this machine -------------------------------------------------------------
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# A container's memory limit (cgroup v2, then v1), when lower.
for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
  if [ -r "$f" ]; then
    lim=$(cat "$f")
    if [[ $lim =~ ^[0-9]+$ ]] && [ $((lim / 1048576)) -lt "$mem_mb" ]; then mem_mb=$((lim / 1048576)); fi
  fi
done
# Keep 10% (at least 512 MB, at most 4 GB) for the system and the daemons.
margin=$((mem_mb / 10)); [ $margin -lt 512 ] && margin=512; [ $margin -gt 4096 ] && margin=4096
real_mem=$((mem_mb - margin)); [ $real_mem -lt 256 ] && real_mem=256
def_mem=$((real_mem / cpus)); [ $def_mem -gt 1024 ] && def_mem=1024

[ -s "$DIR/etc/db.pass" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/etc/db.pass"; }
chmod 600 "$DIR/etc/db.pass"
DB_PASS=$(cat "$DIR/etc/db.pass")

new_conf=$(cat <<EOF
$MARKER
# One node (this machine), partitions cpu (default) and gpu; no GPUs/GRES. Folder: $DIR
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/etc/plugstack.conf
MailProg=/bin/true
# No systemd, no cgroups (containers): processes tracked through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5
# Without cgroups, --mem is enforced by polling (every 5 s): a job whose processes together
# hold more than it asked for is killed. UsePss: shared pages are counted once, as a cgroup does.
JobAcctGatherParams=OverMemoryKill,UsePss
MpiDefault=none
SwitchType=switch/none
LaunchType=launch/slurm
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
EnforcePartLimits=ALL
# The node's config wins over what slurmd detects (a container's view of the hardware).
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for an hour; sacct keeps them for good.
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmdTimeout=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# For slurmdbd connections this is the munge socket (AuthInfo is not used for them).
AccountingStoragePass=$SOCK
AccountingStorageEnforce=associations
# sacct shows sbatch --comment (the Snakemake plugin's rule_<rule>_wildcards_<...>).
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
EOF
)

new_dbd=$(cat <<EOF
$MARKER
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)

if [ -f "$CONF" ] && alive "$DIR/run/slurmctld.pid"; then
  if [ "$new_conf" != "$(cat "$CONF")" ] || [ "$new_dbd" != "$(cat "$DIR/etc/slurmdbd.conf")" ]; then
    say "the configuration changed (this machine's CPUs/memory/name, or the settings): restarting"
    flock -u 9
    "$HERE/stop-local-slurm.sh"
    flock -w "$TIMEOUT" 9 || fail "another start/stop holds $DIR/.lock"
  fi
fi
printf '%s\n' "$new_conf" >"$CONF"
printf '%s\n' "$new_dbd" >"$DIR/etc/slurmdbd.conf"
: >"$DIR/etc/plugstack.conf"
chmod 644 "$CONF" "$DIR/etc/plugstack.conf"
chmod 600 "$DIR/etc/slurmdbd.conf"

# Clients: /etc/slurm/slurm.conf (keeping a foreign one aside).
if [ "$SYSTEM_CONF" = 1 ]; then
  mkdir -p /etc/slurm
  if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARKER" /etc/slurm/slurm.conf; then
    if [ -e "$DIR/etc/system-slurm.conf.orig" ]; then
      fail "/etc/slurm/slurm.conf is not ours and $DIR/etc/system-slurm.conf.orig exists already; sort them out by hand"
    fi
    cp -p /etc/slurm/slurm.conf "$DIR/etc/system-slurm.conf.orig"
    say "kept the existing /etc/slurm/slurm.conf as $DIR/etc/system-slurm.conf.orig (the stop script puts it back)"
  fi
  cp "$CONF" /etc/slurm/slurm.conf.backdrop-new
  chmod 644 /etc/slurm/slurm.conf.backdrop-new
  mv /etc/slurm/slurm.conf.backdrop-new /etc/slurm/slurm.conf
fi

# Daemons hold no descriptor of ours: not the lock (fd 9), not a caller's pipes (a test's
# captured output would never reach EOF).
closefds_exec() { # log, command...: (in a subshell) stdin /dev/null, output to log, no other fd
  local log=$1; shift
  local fd
  for fd in "/proc/$BASHPID/fd"/*; do
    fd=${fd##*/}
    [ "$fd" -gt 2 ] && eval "exec $fd>&-"
  done 2>/dev/null
  exec "$@" </dev/null >>"$log" 2>&1
}
daemon() { ( closefds_exec "$@" ); }  # one that forks into the background itself
start_bg() { ( closefds_exec "$@" ) & }  # one that stays in the foreground

# --- munged -------------------------------------------------------------------------------------
if ! alive "$DIR/run/munged.pid"; then
  [ -s "$DIR/munge/munge.key" ] || mungekey -c -k "$DIR/munge/munge.key" >/dev/null
  chmod 600 "$DIR/munge/munge.key"
  rm -f "$SOCK" "$SOCK.lock"
  say "starting munged"
  daemon "$DIR/log/munged.log" munged -S "$SOCK" --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" || fail "munged did not start; see $DIR/log/munged.log"
fi
wait_for "$TIMEOUT" munged "$DIR/log/munged.log" bash -c "munge -S '$SOCK' -n | unmunge -S '$SOCK'"

# --- MariaDB (accounting database) ------------------------------------------------------------
MYSQL=(mariadb --no-defaults -S "$DBSOCK" -u root)
if ! alive "$DIR/run/mariadb.pid"; then
  if [ ! -d "$DIR/mysql/data/mysql" ]; then
    say "creating the accounting database in $DIR/mysql"
    mariadb-install-db --no-defaults --datadir="$DIR/mysql/data" --user=root \
      --auth-root-authentication-method=socket --skip-test-db >>"$DIR/log/mariadb-install.log" 2>&1 \
      || fail "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  say "starting MariaDB on 127.0.0.1:$DB_PORT"
  start_bg "$DIR/log/mariadb.log" setsid mariadbd --no-defaults --user=root --datadir="$DIR/mysql/data" \
    --socket="$DBSOCK" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/log/mariadb.log" \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
    --max-connections=50
fi
wait_for "$TIMEOUT" MariaDB "$DIR/log/mariadb.log" mariadb-admin --no-defaults -S "$DBSOCK" -u root ping
"${MYSQL[@]}" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF

# --- slurmdbd -----------------------------------------------------------------------------------
if ! alive "$DIR/run/slurmdbd.pid"; then
  say "starting slurmdbd"
  daemon "$DIR/log/slurmdbd.log" slurmdbd || fail "slurmdbd did not start; see $DIR/log/slurmdbd.log"
fi
wait_for "$TIMEOUT" slurmdbd "$DIR/log/slurmdbd.log" sacctmgr -n list cluster

# The cluster, an account and its users (root, the sudo user, BACKDROP_SLURM_USERS).
if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if [ -z "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ]; then
  sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="Backdrop local cluster" \
    organization=backdrop >/dev/null
fi
users=(root)
[ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && users+=("$SUDO_USER")
for u in ${BACKDROP_SLURM_USERS:-}; do users+=("$u"); done
for u in "${users[@]}"; do
  if [ -z "$(sacctmgr -n -P list assoc user="$u" account="$ACCOUNT" cluster="$CLUSTER" format=user)" ]; then
    sacctmgr -i add user "$u" account="$ACCOUNT" defaultaccount="$ACCOUNT" cluster="$CLUSTER" >/dev/null
  fi
done

# --- slurmctld, slurmd --------------------------------------------------------------------------
if ! alive "$DIR/run/slurmctld.pid"; then
  say "starting slurmctld"
  daemon "$DIR/log/slurmctld.log" slurmctld -f "$CONF" || fail "slurmctld did not start; see $DIR/log/slurmctld.log"
fi
wait_for "$TIMEOUT" slurmctld "$DIR/log/slurmctld.log" scontrol ping
if ! alive "$DIR/run/slurmd.pid"; then
  say "starting slurmd"
  daemon "$DIR/log/slurmd.log" slurmd -f "$CONF" -N "$HOST" || fail "slurmd did not start; see $DIR/log/slurmd.log"
fi
node_idle() { sinfo -h -n "$HOST" -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)$'; }
end=$((SECONDS + TIMEOUT))
until node_idle; do
  if [ $SECONDS -ge $end ]; then
    echo "--- sinfo -N -l:" >&2; sinfo -N -l >&2 || true
    echo "--- sinfo -R:" >&2; sinfo -R >&2 || true
    echo "--- last lines of $DIR/log/slurmd.log:" >&2; tail -n 15 "$DIR/log/slurmd.log" >&2 || true
    fail "node $HOST not idle within ${TIMEOUT}s; see $DIR/log/slurmd.log and $DIR/log/slurmctld.log"
  fi
  sleep 0.5
done

say "up: cluster '$CLUSTER', node $HOST (CPUs=$cpus, RealMemory=${real_mem} MB), partitions cpu (default), gpu; folder $DIR"
if [ "$SYSTEM_CONF" = 1 ]; then
  say "clients read /etc/slurm/slurm.conf: sinfo, sbatch, sacct work as they are"
else
  say "clients need:  export SLURM_CONF=$CONF"
fi
say "try:  sbatch -p cpu --mem=100 --wrap 'hostname' && sacct"
say "stop: $HERE/stop-local-slurm.sh   (add --purge to delete $DIR)"
