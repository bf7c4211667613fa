#!/usr/bin/env bash
# Build the execution environment image (execution-environment.yml) with podman and run the
# editors' kit and a rotation of a small simulated fleet inside it. Not part of the tests: it
# needs a container runtime and the base image's registry (quay.io). Exit 3 = could not run
# here (no runtime, or the registry is unreachable), with the reason printed.
#   bash benchmarks/ee_image.sh [--tag sne-guichet-ee:1.0.0]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TAG="sne-guichet-ee:$(sed -n 's/^version: *//p' galaxy.yml)"
[ "${1:-}" = "--tag" ] && TAG="$2"
bash scripts/bootstrap.sh --test
export PATH="$ROOT/.venv/bin:$PATH"
if ! command -v podman >/dev/null; then
  echo "ee_image: installing podman (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends podman >/dev/null \
    || { echo "ee_image: NOT RUN - podman could not be installed"; exit 3; }
fi
base="$(python - <<'PY'
import yaml
print(yaml.safe_load(open("execution-environment.yml"))["images"]["base_image"]["name"])
PY
)"
WORK="$ROOT/.build/ee-image"
rm -rf "$WORK" && mkdir -p "$WORK"
if ! podman image exists "$base" && ! podman pull "$base" > "$WORK/pull.log" 2>&1; then
  echo "ee_image: NOT RUN - the base image $base cannot be pulled:"; tail -2 "$WORK/pull.log"; exit 3
fi
start=$SECONDS
ansible-galaxy collection build --force --output-path "$ROOT" "$ROOT" >/dev/null
ansible-builder build -f execution-environment.yml -c "$WORK/context" -t "$TAG" --container-runtime podman \
  > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; echo "ee_image: the image build failed"; exit 1; }
echo "ee_image: built $TAG in $((SECONDS - start)) s ($(podman image inspect "$TAG" --format '{{.Size}}') bytes)"
# Inside the image: the kit, a 3-host simulated fleet (the repository's test harness, mounted
# read-only) rotated with the kit's variables, the re-run, the independent check.
podman run --rm -v "$ROOT/tests:/harness:ro" "$TAG" bash -euc '
  ansible-doc -l sne.guichet
  ansible-playbook sne.guichet.simulate -e simulate_dir=/tmp/kit
  python3 /harness/fleet/make_fleet.py /tmp/fleet --hosts 3 --pki /tmp/kit/pki --python "$(command -v python3)"
  cp /tmp/kit/rotation.yml /tmp/fleet/inventory/group_vars/all/sne_rotation.yml
  printf "%s\n" "---" "sne_guichet_async_certificate: {path: \"{{ sne_guichet_root }}/opt/guichet/conf/Chiffrement_SNE{{ sne_generation }}.cer\", type: der}" \
    > /tmp/fleet/inventory/group_vars/all/sne_async_certificate.yml
  python3 /harness/fleet/check_fleet.py /tmp/fleet --snapshot /tmp/baseline.json >/dev/null
  ansible-playbook -i /tmp/fleet/inventory sne.guichet.rotate -e report_dir=/tmp/reports
  ansible-playbook -i /tmp/fleet/inventory sne.guichet.rotate -e report_dir=/tmp/reports | tee /tmp/rerun.log
  ! grep -E "changed=[1-9]" /tmp/rerun.log
  python3 /harness/fleet/check_fleet.py /tmp/fleet --expect rotated --baseline /tmp/baseline.json
'
echo "ee_image: the rotation ran inside $TAG in $((SECONDS - start)) s in all"
