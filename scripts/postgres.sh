#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the server's tests.
#
#   bash scripts/postgres.sh COMMAND...
#
# Installs PostgreSQL from Debian if `initdb` is missing, creates a cluster in a temporary folder,
# starts it on 127.0.0.1 on a free port, runs COMMAND with WAAS_TEST_POSTGRES_URL set to it (a
# superuser URL: the tests create and drop a database each), then stops the cluster and deletes
# its folder, whatever COMMAND did (and on Ctrl-C). Exits with COMMAND's status.
#
# initdb and pg_ctl refuse to run as root: as root (CI), the cluster belongs to the system user
# `waas-pg`, created if missing, and its commands run through runuser.
#
# The cluster runs with fsync off: it is deleted afterwards, and a crash of this machine loses
# nothing a test needs. Crashes of PostgreSQL itself (kill, pg_ctl stop -m immediate) still
# recover from its log.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND..." >&2
  exit 2
fi

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
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bin=$(pg_bin || true)
  [ -n "$bin" ] || { log "postgresql installed, but no initdb found"; exit 1; }
fi

# Who owns and runs the cluster.
if [ "$(id -u)" -eq 0 ]; then
  owner=waas-pg
  if ! id -u "$owner" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$owner"
  fi
  as_owner() { runuser -u "$owner" -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/waas-pg.XXXXXX")
chmod 0755 "$dir"
chown "$owner" "$dir"
data=$dir/data
password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
printf '%s\n' "$password" >"$dir/pwfile"
chown "$owner" "$dir/pwfile"
chmod 0600 "$dir/pwfile"

started=""
stop() {
  local status=$?
  if [ -n "$started" ]; then
    as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    log "stopped"
  fi
  rm -rf "$dir"
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_owner "$bin/initdb" -D "$data" -U postgres --pwfile="$dir/pwfile" --auth=scram-sha-256 \
  --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pwfile"

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

for attempt in 1 2 3 4 5; do
  port=$(free_port)
  # Sockets in the cluster's folder, not /var/run/postgresql (absent without the service).
  if as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 start -o \
    "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    >/dev/null; then
    started=yes
    break
  fi
  log "could not start on port $port (attempt $attempt)"
  tail -n 5 "$dir/server.log" >&2 || true
done
[ -n "$started" ] || { log "PostgreSQL did not start"; exit 1; }

export WAAS_TEST_POSTGRES_URL="postgres://postgres:$password@127.0.0.1:$port/postgres"
log "PostgreSQL $("$bin/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$port, data in $data (owner $owner)"

# Not exec: the trap stops the cluster once the command is done.
set +e
"$@"
