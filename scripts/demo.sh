#!/usr/bin/env bash
# The main job on a fresh machine, against the built-in simulated world:
#   1. install what is needed (scripts/bootstrap.sh),
#   2. generate the test PKI (root, V4/V5 authorities and certificates, the bundles),
#   3. publish the V5 bundle on a loopback HTTP server, as the ministry's download page did,
#   4. build a simulated fleet of guichets (tests/fleet/make_fleet.py) and start the SNE
#      simulator (simulator/sne_simulator.py),
#   5. run the rotation (playbooks/rotate.yml) as an operator would: --check --diff first,
#      then for real, then the read-only audit; the fleet report is printed and written.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh --test   # the demo uses the test harness (fleet, simulator)
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.build/collections"
DEMO="$ROOT/.build/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"

echo "== generating the simulated ministry PKI in $DEMO/pki"
python tests/pki/make_pki.py "$DEMO/pki" >/dev/null

echo "== publishing the V5 bundle on loopback"
python tests/integration/targets/setup_sne_pki/files/serve_bundles.py \
  "$DEMO/pki/bundles" "$DEMO/server" --lifetime 1800 >"$DEMO/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; python simulator/sne_simulator.py stop --state-dir "$DEMO/sne" >/dev/null 2>&1 || true' EXIT
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
]
open(demo + "/rotation.yml", "w").write("\n".join(lines) + "\n")
PY
cat > "$DEMO/inventory.ini" <<INI
[controller]
localhost ansible_connection=local ansible_python_interpreter=$ROOT/.venv/bin/python
INI

echo "== verifying the bundle (playbooks/verify_bundle.yml)"
ansible-playbook -i "$DEMO/inventory.ini" playbooks/verify_bundle.yml -e "@$DEMO/rotation.yml"

HOSTS="${SNE_DEMO_HOSTS:-12}"
echo "== building a simulated fleet of $HOSTS guichets in $DEMO/fleet"
python tests/fleet/make_fleet.py "$DEMO/fleet" --hosts "$HOSTS" --pki "$DEMO/pki" --python "$ROOT/.venv/bin/python"
cp "$DEMO/rotation.yml" "$DEMO/fleet/inventory/group_vars/all/sne_rotation.yml"

echo "== starting the SNE simulator (V5 current, V4 revoked)"
cat > "$DEMO/sne.json" <<JSON
{"current": {"generation": "V5", "certificate": "pki/chiffrement-v5.pem", "key": "pki/chiffrement-v5.key"},
 "revoked": [{"generation": "V4", "certificate": "pki/chiffrement-v4.pem", "key": "pki/chiffrement-v4.key"}],
 "transports": {"http": {"port": 0}}}
JSON
python simulator/sne_simulator.py start --config "$DEMO/sne.json" --state-dir "$DEMO/sne" --lifetime 1800 >/dev/null
sne_url="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"]["url"])' "$DEMO/sne/simulator.json")"
cat > "$DEMO/fleet/inventory/group_vars/all/sne_async.yml" <<YAML
---
sne_async_check_enabled: true
sne_guichet_async_transport: http
sne_guichet_async_http: {url: "$sne_url"}
sne_guichet_async_certificate: {path: "{{ sne_guichet_root }}/opt/guichet/conf/Chiffrement_SNEV5.cer", type: der}
async_check_timeout: 30
async_check_poll_interval: 0.5
YAML
python tests/fleet/check_fleet.py "$DEMO/fleet" --snapshot "$DEMO/baseline.json" >/dev/null

export ANSIBLE_FORKS=10
echo "== rotate.yml --check --diff (changes nothing)"
ansible-playbook -i "$DEMO/fleet/inventory" playbooks/rotate.yml --check -e sne_run_id=demo-check >"$DEMO/rotate-check.log" 2>&1 || true
echo "   log: $DEMO/rotate-check.log"
echo "== rotate.yml (one host, guichet-004, has a wrong keystore password on purpose)"
ansible-playbook -i "$DEMO/fleet/inventory" playbooks/rotate.yml -e sne_run_id=demo-1 \
  -e report_dir_default="$DEMO/reports" 2>&1 | tee "$DEMO/rotate.log" | sed -n '/Fleet summary/,/^$/p;/PLAY RECAP/,$p' || true
echo "== audit.yml (read-only)"
ansible-playbook -i "$DEMO/fleet/inventory" playbooks/audit.yml >"$DEMO/audit.log" 2>&1
sed -n '/Show the fleet totals/,/^$/p' "$DEMO/audit.log"
echo "== independent check of every host (keytool, openssl)"
python tests/fleet/check_fleet.py "$DEMO/fleet" --expect rotated --baseline "$DEMO/baseline.json"
echo "reports: $DEMO/reports"
