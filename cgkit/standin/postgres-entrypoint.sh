#!/bin/sh
# Stand-in for the entrypoint of docker.io/postgis/postgis (docker-library/postgres
# docker-entrypoint.sh), for the sandbox's PostgreSQL image built from Debian packages: the same
# contract cgkit's StatefulSet relies on. On an empty $PGDATA it runs initdb with the superuser
# `postgres` and the password from $POSTGRES_PASSWORD (read from a private file, never a command
# line), trusts only local socket connections, and requires scram-sha-256 for every TCP client;
# then it runs the server, listening on all addresses. Runs as the pod's UID (999 = postgres here).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
if [ "${1:-postgres}" != "postgres" ]; then exec "$@"; fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  umask 077
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --username=postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
