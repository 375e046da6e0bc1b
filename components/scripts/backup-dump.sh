#!/bin/sh
# cgkit: dump every database of this tenant's PostgreSQL (pg_dump, custom format) into $WORK/<id>/
# with a manifest: per database its file, size in bytes, SHA-256 and the rows of every table as the
# dump holds them (counted from the dump's own COPY blocks, so they match it exactly). Every
# database, not only the enabled apps': provisioning never drops one, so neither do backups.
# Env: PGHOST PGUSER PGPASSWORD (the server's superuser), WORK, CODE, ENVIRONMENT.
set -eu
id=$(date -u +%Y%m%dT%H%M%SZ)
out="$WORK/$id"
mkdir -p "$out"
tries=0
until pg_isready --quiet; do
  tries=$((tries + 1)); [ "$tries" -le 150 ] || { echo "postgresql did not answer in 5 minutes" >&2; exit 1; }
  echo "waiting for postgresql"; sleep 2
done
databases=$(psql -XAtq -v ON_ERROR_STOP=1 -c "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' AND datname NOT LIKE '%\_drill' ORDER BY 1")
[ -n "$databases" ] || { echo "no database to back up: the tenant has no app database yet" >&2; exit 1; }
first=1
printf '{"id": "%s", "code": "%s", "environment": "%s", "created": "%s", "databases": [' \
  "$id" "$CODE" "$ENVIRONMENT" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$out/manifest.json"
for db in $databases; do
  pg_dump --format=custom --dbname="$db" --file="$out/$db.dump"
  bytes=$(stat -c %s "$out/$db.dump")
  sha=$(sha256sum "$out/$db.dump" | cut -d' ' -f1)
  # Rows per table: the lines of each COPY block of the dump's data (one line per row in COPY text).
  # A failing pg_restore ends the awk with an error (sh has no pipefail); names are JSON-escaped.
  tables=$({ pg_restore --data-only --file=- "$out/$db.dump" || printf '%s\n' '--cgkit: pg_restore failed--'; } | awk '
    /^--cgkit: pg_restore failed--$/ { failed = 1; exit }
    /^COPY / && !inside {
      name = $0; sub(/^COPY /, "", name); sub(/ (\(.*\) )?FROM stdin;$/, "", name)
      gsub(/\\/, "&&", name); gsub(/"/, "\\\"", name); gsub(/\t/, "\\t", name); rows = 0; inside = 1; next }
    inside && /^\\\.$/ { printf "%s\"%s\": %d", sep, name, rows; sep = ", "; inside = 0; next }
    inside { rows++ }
    END { if (failed || inside) exit 1 }')
  printf '{"name": "%s", "file": "%s.dump", "bytes": %s, "sha256": "%s", "tables": {%s}}' \
    "$db" "$db" "$bytes" "$sha" "$tables" > "$out/$db.json"
  [ "$first" = 1 ] || printf ', ' >> "$out/manifest.json"
  cat "$out/$db.json" >> "$out/manifest.json"
  first=0
  echo "dumped $db: $bytes bytes, sha256 $sha"
done
printf ']}\n' >> "$out/manifest.json"
