#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the tests that need one (the chat example's
# Broadcast over LISTEN/NOTIFY: Tests/Peers/test_chat_broadcast.py, Tests/Browser/test_chat_browser.py).
#
# Usage: .ci/postgres.sh start     # install if missing, init if missing, start, wait until ready,
#                                  # create the user and database; prints the URL (and only that)
#                                  # on stdout, e.g. postgres://star:star@127.0.0.1:41234/star
#        .ci/postgres.sh stop      # fast shutdown (data kept); no-op when not running
#        .ci/postgres.sh restart   # stop, then start on the same port with the same data; prints the URL
#        .ci/postgres.sh status    # running: prints the URL, exit 0; stopped: exit 3; no cluster: exit 4
#        .ci/postgres.sh url       # prints the URL of the cluster (running or not); exit 4 without one
#        .ci/postgres.sh destroy   # stop and remove the cluster and its state
#        e.g. export STAR_TEST_POSTGRES_URL=$(.ci/postgres.sh start)
#
# State: everything lives in $STAR_PG_DIR (default ${TMPDIR:-/tmp}/star-pg):
#   data/          the cluster (initdb'd as `postgres` when run as root, else as the caller)
#   run/           its Unix socket directory (so /var/run/postgresql is never needed)
#   postgres.log   the server's log
#   state          shell-style KEY=VALUE lines: BINDIR, PORT, URL (read it, don't source it blindly)
#   flock          flock(1) lock: concurrent calls are serialised
# The port is chosen once, when the cluster is created (a free one on 127.0.0.1), and kept:
# `start` after `stop`, and `restart`, reuse it, so a URL stays valid for the cluster's life.
#
# Server: the newest /usr/lib/postgresql/*/bin (Debian's layout). When there is none it runs
# `apt-get install -y postgresql` (as root, or with password-less sudo) with Debian's
# create_main_cluster switched off first, so that no system cluster is created or started; the
# system cluster, if one exists, is never used or touched. The cluster listens on 127.0.0.1 only
# (TCP) and on its own socket directory; TCP logins need a password (scram-sha-256, or
# $STAR_PG_AUTH: trust, md5, ...), the socket trusts its owner. Tuned for tests, not for data:
# fsync, full_page_writes and synchronous_commit are off.
#
# Env: STAR_PG_DIR    state directory (see above)
#      STAR_PG_USER, STAR_PG_PASSWORD, STAR_PG_DB   the login and database (default: star, star, star)
#      STAR_PG_AUTH   pg_hba method for 127.0.0.1 (default scram-sha-256; read when the cluster is created)
# Timing: ~20 s to install on a fresh Debian 12, ~2 s to create and start a cluster, ~0.5 s to
# start an existing one, ~0.3 s to stop.
set -euo pipefail

base=${STAR_PG_DIR:-${TMPDIR:-/tmp}/star-pg}
db_user=${STAR_PG_USER:-star}
db_password=${STAR_PG_PASSWORD:-star}
db_name=${STAR_PG_DB:-star}
auth=${STAR_PG_AUTH:-scram-sha-256}
data=$base/data
run=$base/run
log=$base/postgres.log
state=$base/state

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; }

[[ $# -eq 1 ]] || { usage; exit 2; }
command=$1
case $command in start|stop|restart|status|url|destroy) ;; -h|--help|help) usage; exit 0 ;; *) usage; exit 2 ;; esac

# -- who runs the server ------------------------------------------------------------------

# As root the server runs as `postgres` (initdb and postgres refuse root), from a directory it
# can enter (the caller's may be closed to it). Never with fd 9, our lock: a server that
# inherited it would hold the lock for its whole life.
if [[ $(id -u) -eq 0 ]]; then
  owner=postgres
  as_owner() { (cd / && runuser -u postgres -- "$@" 9>&-); }
else
  owner=$(id -un)
  as_owner() { "$@" 9>&-; }
fi

# -- the server binaries (installed when missing) -----------------------------------------

find_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir && -x $dir/postgres && -x $dir/initdb && -x $dir/pg_ctl && -x $dir/psql ]] || return 1
  echo "$dir"
}

install_postgres() {
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "PostgreSQL is not installed and this user cannot run apt-get (not root, no password-less sudo)"
    fi
  fi
  say "installing PostgreSQL with apt-get (no main cluster)"
  local started; started=$(date +%s)
  # Debian's postgresql-N postinst creates (and starts) a `main` cluster unless this says off.
  "${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/50-star-no-main-cluster.conf >/dev/null
  local apt_log; apt_log=$(mktemp "${TMPDIR:-/tmp}/postgres-apt.XXXXXX")
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
  local candidate; candidate=$(apt-cache policy postgresql 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [[ -z $candidate || $candidate == "(none)" ]]; then
    "${apt[@]}" update -qq >>"$apt_log" 2>&1 || { tail -n 20 "$apt_log" >&2; rm -f "$apt_log"; die "apt-get update failed"; }
  fi
  if ! "${apt[@]}" install -y -qq --no-install-recommends postgresql >>"$apt_log" 2>&1; then
    # Stale package lists (a 404 on an old version) are the usual cause: refresh once, retry.
    if ! { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends postgresql; } >>"$apt_log" 2>&1; then
      tail -n 30 "$apt_log" >&2; rm -f "$apt_log"
      die "apt-get install postgresql failed"
    fi
  fi
  rm -f "$apt_log"
  say "PostgreSQL installed in $(( $(date +%s) - started ))s"
}

# -- state --------------------------------------------------------------------------------

read_state() { # KEY: prints its value from the state file
  if [[ -f $state ]]; then sed -n "s/^$1=//p" "$state" | tail -n 1; fi
}

pid_of_server() { # prints the postmaster's pid when one runs on $data
  local pid
  [[ -f $data/postmaster.pid ]] || return 1
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # A live pid that is not a postgres (a stale file after a kill -9, pid reused) does not count.
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'postgres' || return 1
  echo "$pid"
}

running() { pid_of_server >/dev/null; }

pick_port() {
  local port
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    port=$(( 20000 + RANDOM % 30000 ))
    echo "$port"
  fi
}

url() { echo "postgres://$db_user:$db_password@127.0.0.1:$(read_state PORT)/$db_name"; }

# -- the cluster --------------------------------------------------------------------------

create_cluster() { # BINDIR
  local bindir=$1 port
  say "creating a cluster in $data"
  rm -rf "$data" "$run"
  mkdir -p "$data" "$run"
  chown "$owner" "$data" "$run"
  chmod 700 "$data"
  chmod 755 "$run"
  as_owner test -w "$data" ||
    die "$owner cannot write to $data (a parent directory is closed to it: set STAR_PG_DIR or TMPDIR elsewhere)"
  local pwfile; pwfile=$(mktemp "$base/pw.XXXXXX")
  echo "$db_password" >"$pwfile"
  chown "$owner" "$pwfile"
  if ! as_owner "$bindir/initdb" -D "$data" -U postgres -E UTF8 --no-locale --no-sync \
      --auth-local=trust --auth-host="$auth" --pwfile="$pwfile" >"$base/initdb.log" 2>&1; then
    rm -f "$pwfile"; tail -n 20 "$base/initdb.log" >&2
    die "initdb failed"
  fi
  rm -f "$pwfile"
  # Only 127.0.0.1 over TCP (no ::1, no other address), and the socket for the owner.
  cat >"$data/pg_hba.conf" <<EOF
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   $auth
EOF
  port=$(pick_port)
  cat >>"$data/postgresql.conf" <<EOF

# .ci/postgres.sh: a throwaway test cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$run'
max_connections = 100
fsync = off
full_page_writes = off
synchronous_commit = off
log_min_messages = warning
log_connections = off
EOF
  chown "$owner" "$data/pg_hba.conf"
  printf 'BINDIR=%s\nPORT=%s\nURL=%s\n' "$bindir" "$port" \
    "postgres://$db_user:$db_password@127.0.0.1:$port/$db_name" >"$state"
}

start_server() { # BINDIR: start the existing cluster and wait until it accepts connections
  local bindir=$1 port pid
  port=$(read_state PORT)
  if [[ -f $data/postmaster.pid ]] && ! running; then
    say "removing a stale postmaster.pid"
    rm -f "$data/postmaster.pid"
  fi
  : >"$log"; chown "$owner" "$log"
  # -w waits until the server accepts connections (or fails); -t bounds it.
  if ! as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start >/dev/null 2>>"$log"; then
    tail -n 20 "$log" >&2
    if grep -qi "could not bind\|address already in use" "$log"; then
      die "port $port on 127.0.0.1 is taken by another process: stop it, or '.ci/postgres.sh destroy' for a new port"
    fi
    die "the server did not start (log: $log)"
  fi
  "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 || die "the server does not answer on 127.0.0.1:$port"
}

ensure_role_and_db() { # BINDIR: idempotent; an existing role or database is kept (its password reset)
  local bindir=$1 out
  if ! out=$(as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$(read_state PORT)" -U postgres \
      -d postgres -v u="$db_user" -v p="$db_password" -v d="$db_name" 2>&1 <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'u') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'u') \gexec
ALTER ROLE :"u" PASSWORD :'p';
SELECT format('CREATE DATABASE %I OWNER %I', :'d', :'u') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'d') \gexec
SQL
  ); then
    echo "$out" >&2
    die "could not create the role $db_user and the database $db_name"
  fi
}

start() {
  local bindir
  bindir=$(read_state BINDIR)
  # (Re)create the cluster when there is none, or its server is gone (/usr/lib/postgresql/N/bin).
  if [[ -z $bindir || ! -x $bindir/postgres || ! -f $data/PG_VERSION ]] ||
     [[ $(cat "$data/PG_VERSION") != "$(basename "$(dirname "$bindir")")" ]]; then
    if running; then stop_server; fi
    bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) || die "no server binaries under /usr/lib/postgresql/*/bin after installing"; }
    create_cluster "$bindir"
  fi
  if ! running; then
    start_server "$bindir"
  fi
  ensure_role_and_db "$bindir"
  url
}

stop_server() {
  local bindir; bindir=$(read_state BINDIR)
  if running; then
    if ! as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 -s stop >&2; then
      say "fast shutdown timed out: immediate shutdown"
      as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w -t 30 -s stop >&2 || true
    fi
  fi
  ! running || die "the server (pid $(pid_of_server)) did not stop"
}

# -- main ---------------------------------------------------------------------------------

mkdir -p "$base"
chmod 755 "$base"
exec 9>"$base/flock"
flock -w 120 9 || die "another postgres.sh has held $base/flock for more than 120 s"

case $command in
  start)
    start ;;
  stop)
    if [[ -f $state ]]; then stop_server; fi ;;
  restart)
    if [[ -f $state ]]; then stop_server; fi
    start ;;
  status)
    if [[ ! -f $state || ! -f $data/PG_VERSION ]]; then say "no cluster in $base"; exit 4; fi
    if running; then
      say "running (pid $(pid_of_server)) on 127.0.0.1:$(read_state PORT), data $data"
      url
    else
      say "stopped (port $(read_state PORT), data $data)"; exit 3
    fi ;;
  url)
    [[ -f $state ]] || { say "no cluster in $base"; exit 4; }
    url ;;
  destroy)
    if [[ -f $state ]]; then stop_server; fi
    rm -rf "$data" "$run" "$state" "$log" "$base/initdb.log" ;;
esac
