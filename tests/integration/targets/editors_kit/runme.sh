#!/usr/bin/env bash
# The editors' CI kit, as an editor's CI job uses it (docs/editors-ci.md): everything runs
# from the collection BUILT AND INSTALLED into an empty collections path, never from this
# copy of the repository:
#   1. ansible-galaxy collection build + install; module_defaults with group/sne.guichet.all;
#   2. sne.guichet.simulate (check mode makes nothing): a test PKI with fresh keys, the SNE
#      simulator on loopback (V5 current, V4 revoked), rotation.yml; a second run changes nothing;
#   3. a test environment (3 guichets) rotated with sne.guichet.rotate and the kit's variables,
#      asynchronous check on (the batch's returns awaited once, on the controller), its JUnit
#      report read with junitparser; the re-run changes
#      nothing; an independent check (keytool, openssl) of every guichet;
#   4. the kit switched to V6 current (V4, V5 revoked) restarts the simulator; stopped, it
#      stops it.
set -euo pipefail
COLL="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/sne/guichet"   # the copy: build source, test harness
PY="$ANSIBLE_TEST_PYTHON_INTERPRETER"
WORK="$(mktemp -d /tmp/sne-kit.XXXXXX)"
KIT="$WORK/kit"
cleanup() {
  if [ -d "$WORK/collections" ]; then
    ANSIBLE_COLLECTIONS_PATH="$WORK/collections" ansible-playbook sne.guichet.simulate \
      -e simulate_dir="$KIT" -e simulate_state=stopped >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
recap_all() {  # recap_all LOG PATTERN: every host of the recap matches
  local bad
  bad="$(sed -n '/^PLAY RECAP/,$p' "$1" | grep -E '^[a-z]' | grep -vE -- "$2" || true)"
  [ -z "$bad" ] || { tail -40 "$1"; fail "$1: recap lines not matching '$2': $bad"; }
}

echo "== 1. build, install into an empty collections path"
ansible-galaxy collection build --output-path "$WORK/dist" "$COLL" >/dev/null
mkdir "$WORK/collections"
# --force: ansible-test's own copy of the collection (same version) would satisfy the request
ansible-galaxy collection install --force -p "$WORK/collections" "$WORK"/dist/sne-guichet-*.tar.gz >/dev/null
export ANSIBLE_COLLECTIONS_PATH="$WORK/collections" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
INSTALLED="$WORK/collections/ansible_collections/sne/guichet"
[ ! -e "$INSTALLED/tests" ] || fail "the installed collection ships tests/"
listed="$(ansible-galaxy collection list sne.guichet --format json)"
[ "$("$PY" -c 'import json,sys; print(list(json.loads(sys.argv[1])))' "$listed")" = "['$WORK/collections/ansible_collections']" ] \
  || fail "sne.guichet is found elsewhere than the installed copy: $listed"

mkdir "$WORK/scan"
"$PY" "$COLL/roles/simulate/files/make_pki.py" "$WORK/pki" --keys "$COLL/tests/pki/keys" >/dev/null
cp "$WORK/pki/chiffrement-v4.der" "$WORK/scan/Chiffrement_SNEV4.cer"
v4="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["certificates"]["chiffrement-v4"]["sha256"])' "$WORK/pki/manifest.json")"
ansible-playbook module_defaults.yml -e scan_root="$WORK/scan" -e retired="$v4" > "$WORK/defaults.log" 2>&1 \
  || { cat "$WORK/defaults.log"; fail "module_defaults with group/sne.guichet.all"; }

echo "== 2. sne.guichet.simulate: check mode makes nothing; then twice"
ansible-playbook sne.guichet.simulate -e simulate_dir="$KIT" --check > "$WORK/kit-0.log" 2>&1 || { cat "$WORK/kit-0.log"; fail "simulate --check"; }
[ ! -e "$KIT" ] || fail "check mode made $KIT"
ansible-playbook sne.guichet.simulate -e simulate_dir="$KIT" > "$WORK/kit-1.log" 2>&1 || { cat "$WORK/kit-1.log"; fail "simulate"; }
recap_all "$WORK/kit-1.log" "failed=0"
ansible-playbook sne.guichet.simulate -e simulate_dir="$KIT" > "$WORK/kit-2.log" 2>&1 || { cat "$WORK/kit-2.log"; fail "simulate again"; }
recap_all "$WORK/kit-2.log" "changed=0 .*failed=0"
for f in rotation.yml sne.json pki/manifest.json pki/bundles/good-v5.zip sne/simulator.json; do
  [ -s "$KIT/$f" ] || fail "the kit did not write $f"
done
[ "$(stat -c %a "$KIT/pki/keys/leaf-v5.pem")" = 600 ] || fail "a kit key is not 0600"
cmp -s "$KIT/pki/keys/leaf-v5.pem" "$COLL/tests/pki/keys/leaf-v5.pem" && fail "the kit reused the repository's test keys"
"$PY" "$INSTALLED/roles/simulate/files/sne_simulator" status --state-dir "$KIT/sne" >/dev/null || fail "the simulator does not run"

echo "== 3. a test environment rotated with the kit's variables"
"$PY" "$COLL/tests/fleet/make_fleet.py" "$WORK/fleet" --hosts 3 --pki "$KIT/pki" --python "$PY" >/dev/null
INV="$WORK/fleet/inventory"
cp "$KIT/rotation.yml" "$INV/group_vars/all/sne_rotation.yml"
cat > "$INV/group_vars/all/sne_async_certificate.yml" <<'YAML'
---
# Where each guichet of this test environment reads the certificate (the editor's own setting).
sne_guichet_async_certificate: {path: "{{ sne_guichet_root }}/opt/guichet/conf/Chiffrement_SNE{{ sne_generation }}.cer", type: der}
async_check_timeout: 30
async_check_poll_interval: 0.5
# The controller reaches the simulator's HTTP URL: one wait on it for the whole batch.
sne_async_check_await_from: controller
YAML
"$PY" "$COLL/tests/fleet/check_fleet.py" "$WORK/fleet" --snapshot "$WORK/baseline.json" >/dev/null
ansible-playbook -i "$INV" sne.guichet.rotate -e report_dir="$WORK/reports" > "$WORK/rotate-1.log" 2>&1 \
  || { tail -60 "$WORK/rotate-1.log"; fail "sne.guichet.rotate"; }
recap_all "$WORK/rotate-1.log" "failed=0"
grep -qE '^guichet-001 .*changed=[1-9]' "$WORK/rotate-1.log" || fail "the first rotation changed nothing"
# The kit's variables prove revocation with its CRLs: V5 not revoked, V4 revoked at the cutover.
grep -q '"msg": "V4: revoked by the CRL of AC SNE V4 (test) since 2016-01-07T08:00:00+00:00"' "$WORK/rotate-1.log" \
  || fail "the rotation did not prove V4 revoked by its CRL"
grep -q "V5: not revoked by the CRL of AC SNE V5 (test)" "$WORK/rotate-1.log" || fail "V5 not proven unrevoked"
# The returns were awaited once, on the controller, for the batch; no host waited itself.
"$PY" - "$WORK/rotate-1.log" <<'PYLOG'
import re, sys
log = open(sys.argv[1]).read()
def results(title):
    block = log.split("TASK [sne.guichet.async_check : %s]" % title, 1)[1].split("\nTASK [", 1)[0]
    return re.findall(r"^(ok|changed|skipping|failed|fatal): \[([^\]]+)\]", block, re.M)
batch = results("Wait on the controller for the returns of the whole batch")
assert len(batch) == 1 and batch[0][0] == "ok" and "-> localhost" in batch[0][1], batch
assert [r[0] for r in results("Wait for the SNE's return of the message (on the controller when it sent it)")] == ["skipping"] * 3
PYLOG
"$PY" - "$WORK/reports/V5/junit.xml" <<'PYJUNIT'
import sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
cases = [case for suite in xml for case in suite]
names = sorted(case.name for case in cases)
failed = [case.name for case in cases if not case.is_passed]
print("junit.xml: %d cases, failures %s" % (len(cases), failed))
assert names == ["guichet-001", "guichet-002", "guichet-003"], names
assert failed == [], failed
PYJUNIT
"$PY" - "$WORK/reports/V5/report.json" <<'PYREPORT'
import json, sys
report = json.load(open(sys.argv[1]))
checks = {h["host"]: (h.get("probe") or {}).get("status") for h in report["hosts"]}
assert set(checks.values()) == {"passed"}, checks  # every host's V5 message answered by the simulator
PYREPORT
ansible-playbook -i "$INV" sne.guichet.rotate -e report_dir="$WORK/reports" > "$WORK/rotate-2.log" 2>&1 \
  || { tail -60 "$WORK/rotate-2.log"; fail "sne.guichet.rotate, re-run"; }
recap_all "$WORK/rotate-2.log" "changed=0 .*failed=0"
"$PY" "$COLL/tests/fleet/check_fleet.py" "$WORK/fleet" --expect rotated --baseline "$WORK/baseline.json" \
  || fail "the independent check of the rotated environment"

echo "== 4. the kit moves to V6, then stops"
old_pid="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$KIT/sne/simulator.json")"
ansible-playbook sne.guichet.simulate -e simulate_dir="$KIT" -e simulate_current=V6 -e '{"simulate_revoked": ["V4", "V5"]}' \
  > "$WORK/kit-3.log" 2>&1 || { cat "$WORK/kit-3.log"; fail "simulate V6"; }
"$PY" - "$KIT" "$old_pid" <<'PYKIT'
import json, sys, yaml
kit, old_pid = sys.argv[1], int(sys.argv[2])
state = json.load(open(kit + "/sne/simulator.json"))
config = json.load(open(kit + "/sne.json"))
rotation = yaml.safe_load(open(kit + "/rotation.yml"))
manifest = json.load(open(kit + "/pki/manifest.json"))
assert state["pid"] != old_pid, "the simulator was not restarted"
assert config["current"]["generation"] == "V6" and [r["generation"] for r in config["revoked"]] == ["V4", "V5"]
assert rotation["sne_generation"] == "V6" and rotation["sne_bundle_src"].endswith("/good-v6.zip")
assert rotation["sne_guichet_async_http"]["url"] == state["http"]["url"]
c = manifest["certificates"]
assert sorted(rotation["sne_retired_sha256"]) == sorted(c[i]["sha256"] for i in ("chiffrement-v4", "ac-v4", "chiffrement-v5", "ac-v5"))
PYKIT
ansible-playbook sne.guichet.simulate -e simulate_dir="$KIT" -e simulate_state=stopped > "$WORK/kit-4.log" 2>&1 \
  || { cat "$WORK/kit-4.log"; fail "simulate stopped"; }
rc=0; "$PY" "$INSTALLED/roles/simulate/files/sne_simulator" status --state-dir "$KIT/sne" >/dev/null || rc=$?
[ "$rc" -eq 3 ] || fail "the simulator still runs after simulate_state=stopped (status $rc)"
ansible-playbook sne.guichet.simulate -e simulate_dir="$KIT" -e simulate_state=stopped > "$WORK/kit-5.log" 2>&1
recap_all "$WORK/kit-5.log" "changed=0 .*failed=0"
echo "editors_kit: OK"
