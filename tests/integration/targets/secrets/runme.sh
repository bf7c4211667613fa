#!/usr/bin/env bash
# No secret anywhere at -vvvv. A two-host fleet (tests/fleet/make_fleet.py, local connection)
# whose Java stores all have distinctive passwords (files/secrets_check.py setup): a JKS, a
# PKCS#12 truststore, a PKCS#12 keystore with a private key (rewritten by keytool), a JCEKS,
# the asynchronous check reading the JKS with its password, a stray PKCS#12 the scan opens with
# its own password (a keystore: reported, never moved), and the JKS password in
# guichet.properties next to the lines the rotation rewrites.
# Every run is at -vvvv, --diff where it applies, with the progress callback:
#
#   1. the modules directly (keystores: check mode, real, wrong passwords; scan with a password
#      map and a password list; async_probe with the right and a wrong JKS password), every
#      result registered and printed whole (debug var=);
#   2. rotate.yml --check --diff; 3. rotate.yml with wrong passwords on guichet-001 (failed,
#      guichet-002 rotates); 4. rotate.yml (guichet-001 rotates); 5. rotate.yml again (nothing
#      changes); 6. audit.yml (the scan with the PKCS#12 passwords); 7. rollback.yml of run 4;
#      after each playbook, what it registered on every host printed whole (files/dump.yml).
#
# Meanwhile files/secrets_check.py sample reads /proc/*/cmdline and /proc/*/environ every 10 ms.
# Then the judge reads every byte the runs produced - stdout and stderr, ANSIBLE_LOG_PATH, the
# reports (JSON, HTML, JUnit, fleet state, audit proposals), the hosts (their backups, manifests
# and quarantine; every file name and extended attribute), the simulator's state, Ansible's and
# the modules' temporary folders - for each password as UTF-8, UTF-16, hex and base64 (three
# alignments, standard and URL-safe): no hit, no command line holding one, no temporary file left.
set -euo pipefail

COLL="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/sne/guichet"
PY="$ANSIBLE_TEST_PYTHON_INTERPRETER"
HERE="$(pwd)"
WORK="$(mktemp -d /tmp/sne-secrets.XXXXXX)"
CHECK="$HERE/files/secrets_check.py"
SAMPLER=""
cleanup() {
  [ -z "$SAMPLER" ] || { touch "$WORK/sampler.stop"; wait "$SAMPLER" 2>/dev/null || true; }
  "$PY" "$COLL/roles/simulate/files/sne_simulator" stop --state-dir "$WORK/sne" >/dev/null 2>&1 || true
  if [ -n "${SNE_SECRETS_KEEP:-}" ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$PY" "$COLL/roles/simulate/files/make_pki.py" "$WORK/pki" --keys "$COLL/tests/pki/keys" >/dev/null
"$PY" "$COLL/tests/fleet/make_fleet.py" "$WORK/fleet" --hosts 2 --pki "$WORK/pki" --python "$PY" >/dev/null
"$PY" "$CHECK" setup "$WORK"
INV="$WORK/fleet/inventory"
REPORTS="$WORK/reports"

# The SNE simulator on V5 (V4 revoked) for the asynchronous check, over HTTP.
cat > "$WORK/sne.json" <<JSON
{"current": {"generation": "V5", "certificate": "pki/chiffrement-v5.pem", "key": "pki/chiffrement-v5.key"},
 "revoked": [{"generation": "V4", "certificate": "pki/chiffrement-v4.pem", "key": "pki/chiffrement-v4.key"}],
 "transports": {"http": {"port": 0}}}
JSON
"$PY" "$COLL/roles/simulate/files/sne_simulator" start --config "$WORK/sne.json" --state-dir "$WORK/sne" --lifetime 7200 >/dev/null
SNE_URL="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"]["url"])' "$WORK/sne/simulator.json")"
cat > "$INV/group_vars/all/sne_async.yml" <<YAML
---
sne_async_check_enabled: true
sne_guichet_async_transport: http
sne_guichet_async_http: {url: "$SNE_URL"}
async_check_timeout: 20
async_check_poll_interval: 0.5
YAML

# Everything the runs write goes where the judge reads it.
mkdir -p "$WORK/tmp" "$WORK/remote-tmp" "$WORK/local-tmp" "$WORK/logs"
export TMPDIR="$WORK/tmp" ANSIBLE_REMOTE_TMP="$WORK/remote-tmp" ANSIBLE_LOCAL_TEMP="$WORK/local-tmp"
export ANSIBLE_LOG_PATH="$WORK/ansible.log" ANSIBLE_CALLBACKS_ENABLED=sne.guichet.progress SNE_PROGRESS_INTERVAL=0
export ANSIBLE_FORKS=2 ANSIBLE_NOCOLOR=1
export SNE_SECRETS_RUN="$WORK"  # the sampler knows this test's processes by it

"$PY" "$CHECK" sample "$WORK" &
SAMPLER=$!
for _ in $(seq 100); do [ -e "$WORK/sampler.ready" ] && break; sleep 0.1; done
[ -e "$WORK/sampler.ready" ] || fail "the sampler did not start"

# play NAME RC ARGS...: ansible-playbook -vvvv ARGS, stdout and stderr kept apart; exit code RC.
play() {
  local name="$1" want="$2" rc=0; shift 2
  echo "== $name"
  ansible-playbook -vvvv -i "$INV" -e report_dir="$REPORTS" "$@" \
    > "$WORK/logs/$name.out" 2> "$WORK/logs/$name.err" || rc=$?
  [ "$rc" -eq "$want" ] || { tail -40 "$WORK/logs/$name.out"; tail -20 "$WORK/logs/$name.err"; \
    fail "$name exited $rc, expected $want"; }
}
# recap NAME HOST PATTERN: the PLAY RECAP line of HOST in NAME's output matches PATTERN.
recap() {
  local line
  line="$(sed -n '/^PLAY RECAP/,$p' "$WORK/logs/$1.out" | grep -E "^$2 " || true)"
  echo "$line" | grep -qE -- "$3" || fail "$1: $2 recap is '${line:-missing}', expected $3"
}

play direct 0 "$HERE/files/direct.yml" -e @"$WORK/direct.json" --diff
play check-diff 0 "$HERE/files/rotate.yml" --check --diff -e sne_run_id=sec-check
"$PY" "$CHECK" wrong "$WORK" on
play wrong-password 2 "$HERE/files/rotate.yml" --diff -e sne_run_id=sec-wrong
recap wrong-password guichet-001 "failed=1"
recap wrong-password guichet-002 "failed=0"
grep -q "store password incorrect" "$WORK/logs/wrong-password.out" || fail "no wrong-password failure reported"
"$PY" "$CHECK" wrong "$WORK" off
play rotate 0 "$HERE/files/rotate.yml" --diff -e sne_run_id=sec-1
recap rotate guichet-001 "changed=[1-9]"
play rerun 0 "$HERE/files/rotate.yml" --diff -e sne_run_id=sec-2
recap rerun guichet-001 "changed=0"
recap rerun guichet-002 "changed=0"
play audit 0 "$HERE/files/audit.yml"
play rollback 0 "$HERE/files/rollback.yml" --diff -e sne_rollback_run_id=sec-1
recap rollback guichet-001 "changed=[1-9]"

touch "$WORK/sampler.stop"
wait "$SAMPLER"
SAMPLER=""
[ -s "$REPORTS/V5/report.json" ] || fail "no fleet report"
ls "$WORK"/fleet/roots/guichet-002/var/lib/sne-guichet/quarantine/sec-wrong/*/ >/dev/null || fail "nothing quarantined"
# the scan opened the stray PKCS#12 with its password (without it, the file is only "unreadable")
grep -q "retired certificate still in [^\"]*/old-trust.p12" "$REPORTS/V5/report.json" \
  || fail "the stray PKCS#12 was not read with its password"

echo "== judge"
"$PY" "$CHECK" judge "$WORK" --logs "$WORK/logs" --min-keytool 6 \
  --everything "$WORK/logs" "$WORK/ansible.log" "$REPORTS" "$WORK/sne" "$WORK/tmp" "$WORK/remote-tmp" \
               "$WORK/local-tmp" "$WORK/direct/backups" \
  --hosts "$WORK/fleet/roots/guichet-001" "$WORK/fleet/roots/guichet-002" \
  --temp "$WORK/tmp" "$WORK/remote-tmp" "$WORK/local-tmp"
