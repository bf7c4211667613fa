#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage_* functions are called through run_stage
# The whole test suite, as CI runs it (.ci/run calls this):
#   ruff, unit tests (pytest), integration tests (ansible-test integration: real
#   ansible-playbook runs), ansible-test sanity (zero ignores), ansible-lint (production),
#   package (the built tarball, installed into an empty path: tests/package, the changelog
#   lint, and the demo rotation run from the installed copy).
# Installs what it needs (scripts/bootstrap.sh). Usage: scripts/test.sh [stage...]
# where stage is one of: ruff unit integration sanity lint package (default: all), or fuzz
# (not in the default: the tests marked fuzz, e.g. a SIGKILL at every write of every store).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh --test
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
# Screenshots of the HTML reports and other files worth keeping from a CI run.
export SNE_ARTEFACTS="$ROOT/.build/artefacts"
stages=("$@")
[ "${#stages[@]}" -gt 0 ] || stages=(ruff unit integration sanity lint package)
results=()

run_stage() {
  local name="$1"; shift
  local start=$SECONDS
  echo "=== $name"
  if "$@"; then results+=("PASS $name ($((SECONDS - start)) s)"); return 0; fi
  results+=("FAIL $name ($((SECONDS - start)) s)")
  return 1
}

stage_ruff() { ruff check . && bash scripts/pep8.sh; }

stage_unit() { python -m pytest tests/unit -q -p no:cacheprovider; }

# Not in the default stages: every kill point, long fuzz runs (tests marked fuzz).
stage_fuzz() { python -m pytest -q -p no:cacheprovider -m fuzz tests/unit; }

stage_integration() {
  local copy
  copy="$(bash scripts/collection-copy.sh "$ROOT/.build/integration")"
  local targets=()
  read -ra targets <<< "${SNE_TARGETS:-}"
  (cd "$copy" && ansible-test integration --python 3.11 --color no "${targets[@]}")
}

stage_sanity() {
  # ansible-test builds one venv per sanity test; its pip bootstrap script comes from a host
  # this network cannot reach: give it the equivalent (see scripts/get_pip_shim.py).
  local venv="$ROOT/.build/venv-sanity" copy
  [ -x "$venv/bin/ansible-test" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q -r requirements.txt; }
  local pip_version
  pip_version="$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)"
  mkdir -p "$HOME/.ansible/test/cache"
  cp scripts/get_pip_shim.py "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
  copy="$(bash scripts/collection-copy.sh "$ROOT/.build/sanity")"
  (cd "$copy" && "$venv/bin/ansible-test" sanity --python 3.11 --requirements --color no)
}

stage_lint() {
  local copy
  copy="$(bash scripts/collection-copy.sh "$ROOT/.build/lint")"
  (cd "$copy" && ANSIBLE_COLLECTIONS_PATH="$ROOT/.build/lint" ansible-lint --profile production --offline)
}

stage_package() {
  python -m pytest tests/package -q -p no:cacheprovider || return 1
  antsibull-changelog lint || return 1
  local log="$ROOT/.build/demo-installed.log"
  if ! bash scripts/demo.sh --installed > "$log" 2>&1; then
    tail -60 "$log"; echo "demo from the installed collection failed (log $log)"; return 1
  fi
  sed -n '/independent check of every host/,$p' "$log"
}

status=0
for stage in "${stages[@]}"; do
  run_stage "$stage" "stage_$stage" || status=1
done
echo "=== summary"
printf '%s\n' "${results[@]}"
exit $status
