#!/usr/bin/env bash
# The pep8 rules of ansible-test sanity (pycodestyle, max line 160, its ignore list), quickly,
# on the files given (pycodestyle comes from requirements-test.txt) (default: every Python file). Usage: scripts/pep8.sh [FILE...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ignore="$(grep -v -e "^#" -e "^$" .venv/lib/python3.*/site-packages/ansible_test/_util/controller/sanity/pep8/current-ignore.txt | paste -sd,)"
if [ "$#" -eq 0 ]; then set -- plugins roles tests benchmarks scripts; fi
.venv/bin/pycodestyle --max-line-length 160 --ignore "$ignore" --exclude .build,.venv,output "$@"
