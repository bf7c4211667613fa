#!/usr/bin/env bash
# Prepare a fresh machine: the system tools the collection and its tests drive
# (openssl, keytool, certutil, sshd), and .venv with the pinned Python requirements.
#   scripts/bootstrap.sh          controller requirements (requirements.txt)
#   scripts/bootstrap.sh --test   plus test requirements (requirements-test.txt)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQ=requirements.txt
[ "${1:-}" = "--test" ] && REQ=requirements-test.txt

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v keytool >/dev/null || missing+=(default-jre-headless)
command -v certutil >/dev/null || missing+=(libnss3-tools)   # store type nss
if [ "$REQ" = requirements-test.txt ]; then
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v rsync >/dev/null || missing+=(rsync)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v chromium >/dev/null || missing+=(chromium)   # tests/report/chromium_check.py
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      echo "bootstrap: need root (or passwordless sudo) to apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: $PY is older than 3.11; ansible-core 2.19 needs 3.11+ on the controller" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.stamp-$(cat requirements.txt "$REQ" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "bootstrap: installing $REQ into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$REQ"
  touch "$stamp"
fi

# Make the collection findable by ansible-playbook as sne.guichet without installing it:
# .build/collections/ansible_collections/sne/guichet -> this repository.
link=.build/collections/ansible_collections/sne/guichet
if [ ! -e "$link" ]; then
  mkdir -p "$(dirname "$link")"
  ln -sfn "$ROOT" "$link"
fi
