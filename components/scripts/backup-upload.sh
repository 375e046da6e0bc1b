#!/bin/sh
# cgkit: upload the backup that backup-dump.sh left in $WORK/<id>/ to s3://$BUCKET/$PREFIX<id>/
# (the manifest last: a backup without manifest.json is incomplete), then apply the retention:
# of the complete backups under $PREFIX, keep the newest of each of the newest $KEEP_DAILY days and
# of each of the newest $KEEP_WEEKLY ISO weeks and delete the rest; delete incomplete ones (a failed
# upload) older than 6 hours; leave anything not named like a backup alone. With $RETAIN_ALL set
# (an offboarding export) nothing is deleted.
# Env: AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION, S3_ENDPOINT, BUCKET, PREFIX
# (<environment>/<code>/), WORK, KEEP_DAILY, KEEP_WEEKLY.
set -eu
s3() { aws --endpoint-url "$S3_ENDPOINT" "$@"; }
id=$(ls "$WORK" | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort | tail -n 1)
[ -n "$id" ] || { echo "no backup in $WORK: the dump did not finish" >&2; exit 1; }
s3 s3 cp --recursive --only-show-errors --exclude manifest.json "$WORK/$id/" "s3://$BUCKET/$PREFIX$id/"
s3 s3 cp --only-show-errors "$WORK/$id/manifest.json" "s3://$BUCKET/$PREFIX$id/manifest.json"
bytes=$(find "$WORK/$id" -type f ! -name '*.json' -exec cat {} + | wc -c)
echo "uploaded $id: $bytes bytes to s3://$BUCKET/$PREFIX$id/"
result() { printf '%s %s' "$id" "$bytes" > /dev/termination-log 2>/dev/null || true; }
[ -z "${RETAIN_ALL:-}" ] || { result; exit 0; }

keys=$(s3 s3api list-objects-v2 --bucket "$BUCKET" --prefix "$PREFIX" --query 'Contents[].Key' --output text | tr '\t' '\n')
ids=$(printf '%s\n' "$keys" | sed -n "s|^$PREFIX\([0-9]\{8\}T[0-9]\{6\}Z\)/.*|\1|p" | sort -u -r)
complete=$(printf '%s\n' "$keys" | sed -n "s|^$PREFIX\([0-9]\{8\}T[0-9]\{6\}Z\)/manifest\.json$|\1|p")
stale=$(date -u -d '6 hours ago' +%Y%m%dT%H%M%SZ)
days=0; weeks=0; last_day=""; last_week=""
for backup in $ids; do
  if ! printf '%s\n' "$complete" | grep -qx "$backup"; then
    if [ "$backup" \< "$stale" ]; then
      echo "delete $backup (incomplete)"; s3 s3 rm --recursive --only-show-errors "s3://$BUCKET/$PREFIX$backup/"
    fi
    continue
  fi
  day=${backup%%T*}
  week=$(date -u -d "$day" +%G-%V 2>/dev/null) || { echo "leave $backup (not a date)"; continue; }
  keep=""
  if [ "$day" != "$last_day" ]; then
    last_day=$day
    if [ "$days" -lt "$KEEP_DAILY" ]; then days=$((days + 1)); keep=daily; fi
  fi
  if [ "$week" != "$last_week" ]; then
    last_week=$week
    if [ "$weeks" -lt "$KEEP_WEEKLY" ]; then weeks=$((weeks + 1)); keep="${keep:+$keep+}weekly"; fi
  fi
  if [ -n "$keep" ] || [ "$backup" = "$id" ]; then
    echo "keep $backup (${keep:-new})"
  else
    echo "delete $backup (past the retention)"
    s3 s3 rm --recursive --only-show-errors "s3://$BUCKET/$PREFIX$backup/"
  fi
done
result
