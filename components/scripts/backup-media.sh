#!/bin/sh
# cgkit: archive every media volume mounted under $MEDIA/<claim>/ (read-only) into the backup that
# backup-dump.sh left in $WORK/<id>/ as media-<claim>.tar, and add them to its manifest as
# "media": [{"claim", "file", "bytes", "sha256", "files"}] (files: regular files in the archive).
# Env: WORK, MEDIA.
set -eu
id=$(ls "$WORK" | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort | tail -n 1)
[ -n "$id" ] || { echo "no backup in $WORK: the dump did not finish" >&2; exit 1; }
out="$WORK/$id"
entries=""
for dir in "$MEDIA"/*/; do
  [ -d "$dir" ] || continue
  claim=$(basename "$dir")
  tar -C "$dir" --exclude=./lost+found -cf "$out/media-$claim.tar" .  # lost+found: the filesystem's, root-only
  bytes=$(stat -c %s "$out/media-$claim.tar")
  sha=$(sha256sum "$out/media-$claim.tar" | cut -d' ' -f1)
  files=$(tar -tvf "$out/media-$claim.tar" | grep -c '^-' || true)
  entries="$entries${entries:+, }{\"claim\": \"$claim\", \"file\": \"media-$claim.tar\", \"bytes\": $bytes, \"sha256\": \"$sha\", \"files\": $files}"
  echo "archived $claim: $files files, $bytes bytes, sha256 $sha"
done
# The manifest ends with ']}' (backup-dump.sh): the media list goes before the closing brace.
sed -i "\$ s/]}\$/], \"media\": [$entries]}/" "$out/manifest.json"
