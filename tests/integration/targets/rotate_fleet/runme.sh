#!/usr/bin/env bash
# The fleet rotation end to end, with the real playbooks, on a simulated fleet: local hosts
# plus three reached over a real sshd on loopback, and the SNE simulator for the
# asynchronous check. Every step is checked by tests/fleet/check_fleet.py, which reads the
# hosts' files with keytool and openssl, not with the collection's code.
#
#   1. rotate --check --diff changes no byte;
#   2. rotate: healthy hosts converge, the broken host is reported and left unchanged,
#      every healthy host passes the asynchronous check;
#   3. rotate again: changed=0 on every host;
#   4. audit: read-only, no retired certificate left on healthy hosts;
#   5. rollback of run 1, twice: back to the original bytes, second run changed=0.
set -euo pipefail

COLL="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/sne/guichet"
PY="$ANSIBLE_TEST_PYTHON_INTERPRETER"
WORK="$(mktemp -d /tmp/sne-fleet.XXXXXX)"
HOSTS="${SNE_FLEET_HOSTS:-8}"
cleanup() {
  bash "$COLL/tests/fleet/sshd.sh" stop "$WORK/sshd" >/dev/null 2>&1 || true
  "$PY" "$COLL/simulator/sne_simulator.py" stop --state-dir "$WORK/sne" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Expect exactly these host results in a PLAY RECAP: recap LOG "changed=0" means every host
# line of the recap (but localhost) shows changed=0.
recap_all() {
  local log="$1" pattern="$2" bad
  bad="$(sed -n '/^PLAY RECAP/,$p' "$log" | grep -E '^guichet-' | grep -v -- "$pattern" || true)"
  if [ -n "$bad" ]; then echo "not every host has $pattern:"; echo "$bad"; return 1; fi
}

"$PY" "$COLL/tests/pki/make_pki.py" "$WORK/pki" >/dev/null

SSH_PORT="$(free_port)"
KEY="$(bash "$COLL/tests/fleet/sshd.sh" start "$WORK/sshd" "$SSH_PORT")"
"$PY" "$COLL/tests/fleet/make_fleet.py" "$WORK/fleet" --hosts "$HOSTS" --pki "$WORK/pki" \
  --ssh-hosts 3 --ssh-port "$SSH_PORT" --ssh-key "$KEY" --python "$PY"
INV="$WORK/fleet/inventory"

# The SNE simulator (current V5, V4 revoked) and the asynchronous check settings.
cat > "$WORK/sne.json" <<JSON
{"current": {"generation": "V5", "certificate": "pki/chiffrement-v5.pem", "key": "pki/chiffrement-v5.key"},
 "revoked": [{"generation": "V4", "certificate": "pki/chiffrement-v4.pem", "key": "pki/chiffrement-v4.key"}],
 "transports": {"http": {"port": 0}}}
JSON
"$PY" "$COLL/simulator/sne_simulator.py" start --config "$WORK/sne.json" --state-dir "$WORK/sne" --lifetime 900 >/dev/null
SNE_URL="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"]["url"])' "$WORK/sne/simulator.json")"
cat > "$INV/group_vars/all/sne_async.yml" <<YAML
---
sne_async_check_enabled: true
sne_guichet_async_transport: http
sne_guichet_async_http: {url: "$SNE_URL"}
sne_guichet_async_certificate: {path: "{{ sne_guichet_root }}/opt/guichet/conf/Chiffrement_SNEV5.cer", type: der}
async_check_timeout: 20
async_check_poll_interval: 0.5
YAML

export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_FORKS=10
play() { ansible-playbook -i "$INV" "$@"; }
check() { "$PY" "$COLL/tests/fleet/check_fleet.py" "$WORK/fleet" "$@"; }

check --snapshot "$WORK/baseline.json"

echo "== 1. rotate --check --diff changes no byte"
play sne.guichet.rotate --check --diff -e sne_run_id=it-check > "$WORK/check.log" 2>&1 || true
grep -q 'sne.guichet.keystores\|Converge every store' "$WORK/check.log"
check --expect untouched --baseline "$WORK/baseline.json"

echo "== 2. rotate"
rc=0
play sne.guichet.rotate -e sne_run_id=it-1 -e report_dir_default="$WORK/reports" > "$WORK/run1.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || { echo "rotate: expected rc 2 (the broken host fails), got $rc"; tail -50 "$WORK/run1.log"; exit 1; }
check --expect rotated --baseline "$WORK/baseline.json"
"$PY" - "$WORK/reports/rotation-it-1.json" "$WORK/fleet/fleet.json" <<'PYCHECK'
import json, sys
report, fleet = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for host, expected in fleet["hosts"].items():
    got = report["hosts"][host]
    if expected["kind"] == "broken":
        assert got["status"] == "failed" and "password" in got["error"], (host, got)
    else:
        assert got["status"] in ("changed", "ok"), (host, got)
        assert got["async_check"] == "passed", (host, got)
print("report: every healthy host passed the asynchronous check; the broken host is reported")
PYCHECK
grep -q 'guichet-00[1-3].*unreachable=0' "$WORK/run1.log"   # the SSH hosts were reached

echo "== 3. rotate again: changed=0 everywhere"
play sne.guichet.rotate -e sne_run_id=it-2 > "$WORK/run2.log" 2>&1 || true
recap_all "$WORK/run2.log" "changed=0"

echo "== 4. audit"
play sne.guichet.audit > "$WORK/audit.log" 2>&1
recap_all "$WORK/audit.log" "changed=0"
grep -q '"clean": '"$((HOSTS - 1))" "$WORK/audit.log"

echo "== 5. rollback run 1, twice"
play sne.guichet.rollback -e sne_rollback_run_id=it-1 > "$WORK/rollback1.log" 2>&1
play sne.guichet.rollback -e sne_rollback_run_id=it-1 > "$WORK/rollback2.log" 2>&1
recap_all "$WORK/rollback2.log" "changed=0"
check --expect untouched --baseline "$WORK/baseline.json" \
  --ignore var/backups --ignore var/lib/sne-guichet --ignore var/log
echo "fleet rotation: all checks passed"
