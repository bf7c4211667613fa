#!/usr/bin/env bash
# The main job on a fresh machine, against the built-in simulated world:
#   1. install what is needed (scripts/bootstrap.sh),
#   2. generate the test PKI (root, V4/V5 authorities and certificates, the bundles),
#   3. publish the V5 bundle on a loopback HTTP server, as the ministry's download page did,
#   4. build a simulated fleet of guichets (tests/fleet/make_fleet.py) and start the SNE
#      simulator (the sne.guichet.simulate role's files/sne_simulator),
#   5. run the rotation (sne.guichet.rotate) as an operator would: --check --diff first,
#      then for real, then the read-only audit; the fleet report is printed and written.
# scripts/demo.sh --installed does the same with the collection as users get it: built with
# ansible-galaxy, installed into an empty collections path (.build/package/collections), and
# only that copy on the collections path (the test harness still comes from the repository).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh --test   # the demo uses the test harness (fleet, simulator)
export PATH="$ROOT/.venv/bin:$PATH"
COLLECTIONS="$ROOT/.build/collections"   # a link to this repository (scripts/bootstrap.sh)
if [ "${1:-}" = "--installed" ]; then
  COLLECTIONS="$ROOT/.build/package/collections"
  rm -rf "$ROOT/.build/package" && mkdir -p "$COLLECTIONS"
  echo "== building the collection tarball and installing it into an empty collections path"
  ansible-galaxy collection build --output-path "$ROOT/.build/package" "$ROOT" >/dev/null
  ansible-galaxy collection install --force -p "$COLLECTIONS" "$ROOT"/.build/package/sne-guichet-*.tar.gz >/dev/null
  export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
fi
export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS"
COLL="$COLLECTIONS/ansible_collections/sne/guichet"   # the simulator and PKI generator ship in it
echo "== sne.guichet $(ansible-galaxy collection list sne.guichet 2>/dev/null | awk '$1 == "sne.guichet" {print $2}') from $COLLECTIONS"
DEMO="$ROOT/.build/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"

echo "== generating the simulated ministry PKI in $DEMO/pki"
python "$COLL/roles/simulate/files/make_pki.py" "$DEMO/pki" --keys tests/pki/keys >/dev/null

echo "== publishing the V5 bundle on loopback"
python tests/integration/targets/setup_sne_pki/files/serve_bundles.py \
  "$DEMO/pki/bundles" "$DEMO/server" --lifetime 1800 >"$DEMO/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; python "$COLL/roles/simulate/files/sne_simulator" stop --state-dir "$DEMO/sne" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do [ -e "$DEMO/server/servers.json" ] && break; sleep 0.1; done
port="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_port"])' "$DEMO/server/servers.json")"

# The rotation's variables, as an operator writes them (pins published by the ministry).
python - "$DEMO" "$port" <<'PY'
import json, sys
demo, port = sys.argv[1], sys.argv[2]
m = json.load(open(demo + "/pki/manifest.json"))
c = m["certificates"]
lines = [
    "---",
    "sne_generation: V5",
    "sne_bundle_src: http://127.0.0.1:%s/good-v5.zip" % port,
    "sne_certificate_sha256: %s" % c["chiffrement-v5"]["sha256"],
    "sne_authority_sha256: [%s]" % c["ac-v5"]["sha256"],
    "sne_retired_sha256: [%s, %s]" % (c["chiffrement-v4"]["sha256"], c["ac-v4"]["sha256"]),
    "sne_bundle_cache_dir: %s/cache" % demo,
    "sne_valid_at: '2026-06-01T00:00:00Z'",
    # The retired generation's certificates (PEM): retire knows by them the messages still
    # queued for V4; the bundle check verifies the V4 CRL with its authority.
    "sne_retired_generation: V4",
    "sne_retired_certificates:",
] + ["  - %s" % json.dumps(open("%s/pki/%s" % (demo, c[k]["path"])).read()) for k in ("chiffrement-v4", "ac-v4")] + [
    # Revocation proven by the authorities' CRLs (one DER, one PEM): V5 not revoked, V4 revoked.
    "sne_bundle_crls:",
    "  - %s/pki/%s" % (demo, m["crls"]["ac-v5"]["der"]),
    "  - %s/pki/%s" % (demo, m["crls"]["ac-v4"]["pem"]),
    "sne_require_retired_revoked: true",
]
open(demo + "/rotation.yml", "w").write("\n".join(lines) + "\n")
PY
cat > "$DEMO/inventory.ini" <<INI
[controller]
localhost ansible_connection=local ansible_python_interpreter=$ROOT/.venv/bin/python
INI

echo "== verifying the bundle (sne.guichet.verify_bundle)"
ansible-playbook -i "$DEMO/inventory.ini" sne.guichet.verify_bundle -e "@$DEMO/rotation.yml"

HOSTS="${SNE_DEMO_HOSTS:-12}"
echo "== building a simulated fleet of $HOSTS guichets in $DEMO/fleet"
python tests/fleet/make_fleet.py "$DEMO/fleet" --hosts "$HOSTS" --pki "$DEMO/pki" --python "$ROOT/.venv/bin/python" \
  --unconfigured 1
cp "$DEMO/rotation.yml" "$DEMO/fleet/inventory/group_vars/all/sne_rotation.yml"

echo "== starting the SNE simulator (V5 current, V4 revoked)"
cat > "$DEMO/sne.json" <<JSON
{"current": {"generation": "V5", "certificate": "pki/chiffrement-v5.pem", "key": "pki/chiffrement-v5.key"},
 "revoked": [{"generation": "V4", "certificate": "pki/chiffrement-v4.pem", "key": "pki/chiffrement-v4.key"}],
 "transports": {"http": {"port": 0}}}
JSON
python "$COLL/roles/simulate/files/sne_simulator" start --config "$DEMO/sne.json" --state-dir "$DEMO/sne" --lifetime 1800 >/dev/null
sne_url="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"]["url"])' "$DEMO/sne/simulator.json")"
cat > "$DEMO/fleet/inventory/group_vars/all/sne_async.yml" <<YAML
---
sne_async_check_enabled: true
sne_guichet_async_transport: http
sne_guichet_async_http: {url: "$sne_url"}
sne_guichet_async_certificate: {path: "{{ sne_guichet_root }}/opt/guichet/conf/Chiffrement_SNE{{ sne_generation }}.cer", type: der}
async_check_timeout: 30
async_check_poll_interval: 0.5
YAML
python tests/fleet/check_fleet.py "$DEMO/fleet" --snapshot "$DEMO/baseline.json" >/dev/null

export ANSIBLE_FORKS=10
# Progress of long tasks (hosts done / failed / left, time left), as the runbook suggests.
export ANSIBLE_CALLBACKS_ENABLED=sne.guichet.progress
REPORTS="$DEMO/reports"
# A run that leaves a host failed or unconfigured exits 2: expected here (guichet-004 has a
# wrong password, the last host declares no store); anything else stops the demo.
run() {  # run LOG ansible-playbook-args...
  local log="$1" rc=0; shift
  ansible-playbook -i "$DEMO/fleet/inventory" -e report_dir="$REPORTS" "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then tail -40 "$log"; echo "demo: ansible-playbook exited $rc" >&2; exit 1; fi
}
echo "== sne.guichet.rotate --check --diff (changes nothing; its report says DRY RUN)"
run "$DEMO/rotate-check.log" sne.guichet.rotate --check --diff -e sne_run_id=demo-check
echo "   log: $DEMO/rotate-check.log; report: $REPORTS/V5/runs/demo-check/report.html"
echo "== sne.guichet.rotate (guichet-004 has a wrong keystore password on purpose; the last host declares no store)"
run "$DEMO/rotate.log" sne.guichet.rotate -e sne_run_id=demo-1 -e sne_revocation_time="$(date -u -d '+1 hour' +%Y-%m-%dT%H:00:00Z)"
sed -n '/TASK \[sne.guichet.report : Fleet summary\]/,/^$/p;/PLAY RECAP/,$p' "$DEMO/rotate.log"
echo "== sne.guichet.audit (read-only; proposes host_vars for the host that declares no store)"
run "$DEMO/audit.log" sne.guichet.audit
sed -n '/TASK \[sne.guichet.report : Fleet summary\]/,/^$/p' "$DEMO/audit.log"
echo "== independent check of every host (keytool, openssl)"
python tests/fleet/check_fleet.py "$DEMO/fleet" --expect rotated --baseline "$DEMO/baseline.json"
echo "reports: $REPORTS/V5/report.html (fleet), $REPORTS/V5/audit/ (audit and host_vars proposals)"
