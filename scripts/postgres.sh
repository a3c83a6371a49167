#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for the server's tests.
#
#   bash scripts/postgres.sh COMMAND...
#       Creates a cluster in a temporary folder, starts it on 127.0.0.1 on a free port, runs
#       COMMAND with WAAS_TEST_POSTGRES_URL set to it (a superuser URL: the tests create and drop
#       a database each), then stops the cluster and deletes its folder, whatever COMMAND did (and
#       on Ctrl-C). Exits with COMMAND's status.
#   bash scripts/postgres.sh --install
#       Installs PostgreSQL from Debian if `initdb` is missing (scripts/setup.sh runs it).
#   bash scripts/postgres.sh --cluster ACTION ...
#       One step of a cluster that a test manages itself, because it stops and restarts it (the
#       fault suite, crates/waas-server/tests/support/cluster.rs):
#         init              creates a cluster in a new temporary folder; prints the folder
#         start DIR         starts it (on a free port the first time, on the same port after);
#                           prints its superuser URL
#         stop DIR MODE     stops it: MODE fast (sessions ended, a clean shutdown) or immediate
#                           (processes killed: a crash, recovered from the log at the next start)
#         restart DIR MODE  stop and start in one (pg_ctl restart)
#         delete DIR        stops it (immediate) if it runs and deletes its folder
#
# Every mode installs PostgreSQL first if it is missing. initdb and pg_ctl refuse to run as root:
# as root (CI), clusters belong to the system user `waas-pg`, created if missing, and their
# commands run through runuser.
#
# Clusters keep fsync and full_page_writes on, as waas-server requires of any database (it refuses
# to start on one that could lose a commit); their default synchronous_commit is off, for the
# tests' own connections: the server's connections set it on.
set -euo pipefail
# Failures inside $(…) stop the script too.
shopt -s inherit_errexit

usage() {
  echo "usage: $0 COMMAND... | --install | --cluster init|start|stop|restart|delete [DIR [MODE]]" >&2
  exit 2
}
[ $# -gt 0 ] || usage

log() { printf '    [postgres] %s\n' "$*" >&2; }

# The binaries: on PATH, or where Debian puts them (not on PATH by default).
pg_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

bin=$(pg_bin || true)
if [ -z "$bin" ]; then
  log "installing postgresql (Debian package)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql \
    </dev/null >/dev/null
  bin=$(pg_bin || true)
  [ -n "$bin" ] || { log "postgresql installed, but no initdb found"; exit 1; }
fi
if [ "$1" = --install ]; then
  echo "PostgreSQL $("$bin/postgres" --version | awk '{ print $3 }') in $bin"
  exit 0
fi

# Who owns and runs clusters.
if [ "$(id -u)" -eq 0 ]; then
  owner=waas-pg
  if ! id -u "$owner" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$owner"
  fi
  # From /: the owner may not enter the caller's folder (a private temporary one, say).
  as_owner() { (cd / && runuser -u "$owner" -- "$@"); }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

# init: a new cluster in a new folder (printed), its superuser's password in DIR/password.
cluster_init() {
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/waas-pg.XXXXXX")
  chmod 0755 "$dir"
  chown "$owner" "$dir"
  local password
  password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  (umask 077 && printf '%s\n' "$password" >"$dir/password")
  cp "$dir/password" "$dir/pwfile"
  chown "$owner" "$dir/pwfile"
  if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    exit 1
  fi
  rm -f "$dir/pwfile"
  echo "$dir"
}

# A free port: one nothing listens on, tried until the server starts (another process may take
# it between the check and the start).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# pg_ctl ACTION on the cluster in $1, listening on port $2 (sockets in the cluster's folder, not
# /var/run/postgresql, absent without the service); extra pg_ctl arguments after.
pg_ctl_on() {
  local dir=$1 port=$2 action=$3
  shift 3
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 "$action" "$@" -o \
    "-h 127.0.0.1 -p $port -k $dir -c synchronous_commit=off -c max_connections=300" \
    >/dev/null
}

# start: on the port of its first start, or a free one then (remembered in DIR/port).
cluster_start() {
  local dir=$1 port attempt
  if [ -f "$dir/port" ]; then
    port=$(cat "$dir/port")
    pg_ctl_on "$dir" "$port" start || { tail -n 5 "$dir/server.log" >&2; exit 1; }
  else
    for attempt in 1 2 3 4 5; do
      port=$(free_port)
      if pg_ctl_on "$dir" "$port" start; then
        echo "$port" >"$dir/port"
        break
      fi
      log "could not start on port $port (attempt $attempt)"
      tail -n 5 "$dir/server.log" >&2 || true
    done
    [ -f "$dir/port" ] || { log "PostgreSQL did not start"; exit 1; }
  fi
  echo "postgres://postgres:$(cat "$dir/password")@127.0.0.1:$port/postgres"
}

mode_of() {
  case ${1:-} in
    fast | immediate) echo "$1" ;;
    *) usage ;;
  esac
}

cluster_stop() {
  as_owner "$bin/pg_ctl" -D "$1/data" -m "$(mode_of "${2:-}")" -w -t 30 stop >/dev/null
}

cluster_restart() {
  pg_ctl_on "$1" "$(cat "$1/port")" restart -m "$(mode_of "${2:-}")"
}

cluster_delete() {
  local dir=$1
  # Only a folder of ours: a mistyped argument must not delete anything else.
  case $dir in
    "${TMPDIR:-/tmp}"/waas-pg.*) ;;
    *) log "not a cluster folder: $dir"; exit 2 ;;
  esac
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

if [ "$1" = --cluster ]; then
  [ $# -ge 2 ] || usage
  action=$2
  shift 2
  case $action in
    init) cluster_init ;;
    start) [ $# -eq 1 ] || usage; cluster_start "$1" ;;
    stop) [ $# -eq 2 ] || usage; cluster_stop "$1" "$2" ;;
    restart) [ $# -eq 2 ] || usage; cluster_restart "$1" "$2" ;;
    delete) [ $# -eq 1 ] || usage; cluster_delete "$1" ;;
    *) usage ;;
  esac
  exit 0
fi

dir=$(cluster_init)
cleanup() {
  local status=$?
  cluster_delete "$dir"
  log "stopped"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export WAAS_TEST_POSTGRES_URL
WAAS_TEST_POSTGRES_URL=$(cluster_start "$dir")
log "PostgreSQL $("$bin/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$(cat "$dir/port"), data in $dir/data (owner $owner)"

# Not exec: the trap stops the cluster once the command is done.
set +e
"$@"
