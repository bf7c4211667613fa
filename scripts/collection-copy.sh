#!/usr/bin/env bash
# Copy the collection's files (tracked and new, not ignored) to
# DEST/ansible_collections/sne/guichet, as ansible-test and ansible-galaxy expect it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:?usage: collection-copy.sh DEST}"
TARGET="$DEST/ansible_collections/sne/guichet"
mkdir -p "$TARGET"
cd "$ROOT"
git ls-files -co --exclude-standard -z | rsync -a --delete --from0 --files-from=- ./ "$TARGET/"
# rsync --files-from does not delete files that disappeared: prune them.
(cd "$TARGET" && find . -type f -print0) | while IFS= read -r -d '' f; do
  [ -e "$ROOT/$f" ] || rm -f "$TARGET/$f"
done
# ansible-test wants the copy to be its own git work tree to know which files belong.
if [ ! -d "$TARGET/.git" ]; then git -C "$TARGET" init -q; fi
git -C "$TARGET" add -A >/dev/null 2>&1
echo "$TARGET"
