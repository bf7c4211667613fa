#!/usr/bin/env bash
# The main job on a fresh machine, against the built-in simulated world:
#   1. install what is needed (scripts/bootstrap.sh),
#   2. generate the test PKI (root, V4/V5 authorities and certificates, the bundles),
#   3. publish the V5 bundle on a loopback HTTP server, as the ministry's download page did,
#   4. run the collection's playbooks against it with the pins of the simulated ministry.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
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
trap 'kill $server 2>/dev/null || true' EXIT
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
]
open(demo + "/rotation.yml", "w").write("\n".join(lines) + "\n")
PY
cat > "$DEMO/inventory.ini" <<INI
[controller]
localhost ansible_connection=local ansible_python_interpreter=$ROOT/.venv/bin/python
INI

echo "== verifying the bundle (playbooks/verify_bundle.yml)"
ansible-playbook -i "$DEMO/inventory.ini" playbooks/verify_bundle.yml -e "@$DEMO/rotation.yml"
