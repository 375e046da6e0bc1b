#!/bin/sh
# cgkit: restore each database of backup $WORK/$BACKUP_ID/ (as its manifest.json lists them) into a
# fresh database "<db>$SUFFIX" owned by the role of that name, then check it: the dump's SHA-256
# against the manifest before, the rows of every table against the manifest after. A database that
# exists is never overwritten. With DROP_AFTER=1 (a drill) each restored copy is dropped once
# checked. A database this run created and could not restore or check is dropped again, however
# the script ends: nothing is left half restored.
# Env: PGHOST PGUSER PGPASSWORD (superuser), WORK, BACKUP_ID, SUFFIX, DROP_AFTER, DATABASES (optional filter).
set -eu
dir="$WORK/$BACKUP_ID"
manifest=$(cat "$dir/manifest.json")
created=""
cleanup() {
  [ -n "$created" ] || return 0
  psql -XAtq --set=name="$created" <<'SQL' || true
DROP DATABASE IF EXISTS :"name";
SQL
}
trap 'status=$?; [ "$status" = 0 ] || cleanup' EXIT
fail() { echo "$*" >&2; printf '%s' "FAILED $*" > /dev/termination-log 2>/dev/null || true; exit 1; }
sql() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
tries=0
until pg_isready --quiet; do
  tries=$((tries + 1)); [ "$tries" -le 150 ] || fail "postgresql did not answer in 5 minutes"
  echo "waiting for postgresql"; sleep 2
done
summary=""
for db in $(sql --set=manifest="$manifest" <<'SQL'
SELECT d->>'name' FROM json_array_elements(:'manifest'::json->'databases') d;
SQL
); do
  if [ -n "${DATABASES:-}" ]; then case " $DATABASES " in *" $db "*) ;; *) continue ;; esac; fi
  target="$db${SUFFIX:-}"
  meta=$(sql --set=manifest="$manifest" --set=db="$db" <<'SQL'
SELECT d FROM json_array_elements(:'manifest'::json->'databases') d WHERE d->>'name' = :'db';
SQL
)
  want=$(sql --set=meta="$meta" <<'SQL'
SELECT :'meta'::json->>'sha256';
SQL
)
  [ -f "$dir/$db.dump" ] || fail "$db: the backup has no $db.dump"
  have=$(sha256sum "$dir/$db.dump" | cut -d' ' -f1)
  [ "$want" = "$have" ] || fail "$db: $db.dump has SHA-256 $have, the manifest says $want"
  exists=$(sql --set=name="$target" <<'SQL'
SELECT count(*) FROM pg_database WHERE datname = :'name';
SQL
)
  [ "$exists" = 0 ] || fail "$target: the database exists; a restore never overwrites one (drop it, or restore beside it)"
  sql --set=name="$target" --set=owner="$db" <<'SQL'
CREATE DATABASE :"name" OWNER :"owner";
SQL
  created=$target
  sql --set=name="$target" <<'SQL'
REVOKE CONNECT, TEMPORARY ON DATABASE :"name" FROM PUBLIC;
SQL
  pg_restore --exit-on-error --dbname="$target" "$dir/$db.dump" || fail "$target: pg_restore failed (see the log above)"
  # Rows now, against the manifest's: ordinary tables only (a partitioned table's rows are its
  # partitions', counted there; ONLY: an inheritance parent without its children), and not the
  # tables an extension owns (PostGIS' spatial_ref_sys is the extension's to fill).
  diff=$(sql --dbname="$target" --set=meta="$meta" <<'SQL'
WITH tables AS (
  SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'),
ext AS (SELECT t.name FROM tables t JOIN pg_depend d ON d.objid = t.oid AND d.classid = 'pg_class'::regclass
        AND d.deptype = 'e'),
have AS (
  SELECT name, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM ONLY %s', name),
                                                    false, true, '')))[1]::text AS rows
  FROM tables WHERE name NOT IN (SELECT name FROM ext)),
want AS (SELECT key AS name, value AS rows FROM json_each_text(:'meta'::json->'tables')
         WHERE key NOT IN (SELECT name FROM ext))
SELECT string_agg(format('%s: %s rows, the backup has %s', coalesce(h.name, w.name), coalesce(h.rows, 'no'),
                         coalesce(w.rows, 'none')), '; ' ORDER BY coalesce(h.name, w.name))
FROM have h FULL JOIN want w ON h.name = w.name
WHERE h.rows IS DISTINCT FROM w.rows;
SQL
)
  [ -z "$diff" ] || fail "$target differs from backup $BACKUP_ID: $diff"
  counted=$(sql --set=meta="$meta" <<'SQL'
SELECT count(*) || ' tables, ' || coalesce(sum(value::bigint), 0) || ' rows'
FROM json_each_text(:'meta'::json->'tables');
SQL
)
  echo "restored $target: $counted, identical to the backup"
  if [ "${DROP_AFTER:-}" = 1 ]; then
    sql --set=name="$target" <<'SQL'
DROP DATABASE :"name";
SQL
  fi
  created=""
  summary="${summary:+$summary; }$target: $counted"
done
[ -n "$summary" ] || fail "backup $BACKUP_ID holds none of the databases asked for (${DATABASES:-none listed})"
printf '%s' "OK $summary" > /dev/termination-log 2>/dev/null || true
