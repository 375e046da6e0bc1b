#!/bin/sh
# cgkit: download backup $BACKUP_ID from s3://$BUCKET/$PREFIX$BACKUP_ID/ into $WORK/$BACKUP_ID/.
# Env: AWS_*, S3_ENDPOINT, BUCKET, PREFIX, WORK, BACKUP_ID.
set -eu
aws --endpoint-url "$S3_ENDPOINT" s3 cp --recursive --only-show-errors \
  "s3://$BUCKET/$PREFIX$BACKUP_ID/" "$WORK/$BACKUP_ID/"
[ -f "$WORK/$BACKUP_ID/manifest.json" ] || { echo "backup $BACKUP_ID has no manifest.json: it is incomplete or does not exist" >&2; exit 1; }
echo "fetched $BACKUP_ID"
