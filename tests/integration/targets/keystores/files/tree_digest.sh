#!/bin/sh
# Print one line per file and link under $1: path, type, mode, owner and content digest.
# Two equal outputs mean the tree is byte-identical.
set -eu
cd "$1"
find . \( -type f -o -type l -o -type d \) -print | LC_ALL=C sort | while IFS= read -r p; do
  if [ -L "$p" ]; then
    printf '%s link %s\n' "$p" "$(readlink "$p")"
  elif [ -d "$p" ]; then
    printf '%s dir %s\n' "$p" "$(stat -c '%a %U:%G' "$p")"
  else
    printf '%s file %s %s\n' "$p" "$(stat -c '%a %U:%G' "$p")" "$(sha256sum < "$p" | cut -d' ' -f1)"
  fi
done
