#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server on loopback for the store tests, installing
# Debian's postgresql package first if the machine lacks it. Prints the URL to use as
# AGORA_TEST_POSTGRES_URL on stdout; everything else goes to stderr.
# Usage: url=$(bash .ci/postgres.sh start)   ...   bash .ci/postgres.sh stop
set -euo pipefail

PGDATA=${AGORA_CI_PGDATA:-/tmp/agora-ci-postgres}
PGPORT=${AGORA_CI_PGPORT:-55432}

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-start}" in
  start)
    if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/postgres" ]; then
      echo "installing PostgreSQL from Debian's packages" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq postgresql >&2
    fi
    BIN=$(pg_bin)
    if [ -f "$PGDATA/postmaster.pid" ]; then
      as_postgres "$BIN/pg_ctl" -D "$PGDATA" stop -m fast >&2 || true
    fi
    rm -rf "$PGDATA"
    mkdir -p "$PGDATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGDATA"
    as_postgres "$BIN/initdb" -D "$PGDATA" -A trust -U postgres -E UTF8 >/dev/null
    as_postgres "$BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
      -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
    as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres agora_test
    echo "postgres://postgres@127.0.0.1:$PGPORT/agora_test"
    ;;
  stop)
    BIN=$(pg_bin)
    if [ -n "$BIN" ] && [ -f "$PGDATA/postmaster.pid" ]; then
      as_postgres "$BIN/pg_ctl" -D "$PGDATA" stop -m fast >&2
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
