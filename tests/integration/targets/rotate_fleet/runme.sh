#!/usr/bin/env bash
# The fleet rotation end to end, with the real playbooks, on a simulated fleet: local hosts
# plus three reached over a real sshd on loopback, and the SNE simulator for the
# asynchronous check. Every step is checked by tests/fleet/check_fleet.py, which reads the
# hosts' files with keytool and openssl, not with the collection's code, and the reports are
# read back (JSON, JUnit with junitparser, HTML in headless Chromium).
#
#   0. a target pattern that matches no host fails the run, naming the pattern; so does a
#      revocation hour without its offset;
#   1. rotate --check --diff changes no byte, and its report says DRY RUN;
#   2. rotate: healthy hosts converge and pass the asynchronous check, the broken host is
#      failed and left unchanged, the host without declared stores is "unconfigured" (failed);
#   2b. the judge can fail: faults planted in a copy of the rotated fleet (a stray put back,
#      the private key lost, V5 missing, V4 bytes left, the configuration or the reload not
#      done, collateral changes, one byte changed...) each make check_fleet.py fail, naming it;
#   3. rotate again: changed=0 and failed=0 on every healthy host;
#   4. audit: read-only; proposes a host_vars fragment for the unconfigured host;
#   5. retries with --limit: the repaired broken host is rotated (the bundle verified again),
#      the fleet report shows it "changed" and every other host as the previous run left it;
#      the unconfigured host, given its proposal, converges;
#   6. the next rotation by variables only: V5 -> V6 on the same fleet, simulator on V6;
#   7. rollback refuses after the revocation hour without force; rollback of the V6 run gives
#      back the V5 bytes, then of the V5 runs the original bytes; each second time changed=0.
# The host with an outbound folder (guichet-006): its messages to V4 are reported and moved
# into the quarantine (2), those to V5 and the plain file stay (2), the second run finds none,
# V6 moves the one to V5, and the rollbacks put each back.
set -euo pipefail

COLL="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/sne/guichet"
PY="$ANSIBLE_TEST_PYTHON_INTERPRETER"
WORK="$(mktemp -d /tmp/sne-fleet.XXXXXX)"
HOSTS="${SNE_FLEET_HOSTS:-9}"
BROKEN=guichet-004        # make_fleet: index 3, wrong JKS password in its host_vars
UNCONF="$(printf 'guichet-%03d' "$HOSTS")"   # --unconfigured 1: the last host
ARTEFACTS="${SNE_ARTEFACTS:-/tmp/sne-artefacts}/rotate_fleet"  # screenshots kept for CI
mkdir -p "$ARTEFACTS"
cleanup() {
  bash "$COLL/tests/fleet/sshd.sh" stop "$WORK/sshd" >/dev/null 2>&1 || true
  "$PY" "$COLL/roles/simulate/files/sne_simulator" stop --state-dir "$WORK/sne" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*"; exit 1; }

# recap LOG HOST PATTERN: the PLAY RECAP line of HOST matches PATTERN.
recap() {
  local line
  line="$(sed -n '/^PLAY RECAP/,$p' "$1" | grep -E "^$2 " || true)"
  echo "$line" | grep -qE -- "$3" || fail "$1: $2 recap is '${line:-missing}', expected $3"
}
# healthy LOG PATTERN...: every guichet of the recap but the broken and unconfigured hosts
# matches every PATTERN.
healthy() {
  local log="$1" host; shift
  while read -r host; do
    for pattern in "$@"; do recap "$log" "$host" "$pattern"; done
  done < <(sed -n '/^PLAY RECAP/,$p' "$log" | grep -oE '^guichet-[0-9]+' | grep -vxE "$BROKEN|$UNCONF")
  [ "$(sed -n '/^PLAY RECAP/,$p' "$log" | grep -cE '^guichet-')" -eq "$HOSTS" ] || fail "$log: not every host in the recap"
}
expect_rc() {  # expect_rc RC LOG -- command...
  local want="$1" log="$2" rc=0; shift 3
  "$@" > "$log" 2>&1 || rc=$?
  [ "$rc" -eq "$want" ] || { tail -60 "$log"; fail "$* exited $rc, expected $want (log $log)"; }
}

"$PY" "$COLL/roles/simulate/files/make_pki.py" "$WORK/pki" --keys "$COLL/tests/pki/keys" >/dev/null

SSH_PORT="$(free_port)"
KEY="$(bash "$COLL/tests/fleet/sshd.sh" start "$WORK/sshd" "$SSH_PORT")"
"$PY" "$COLL/tests/fleet/make_fleet.py" "$WORK/fleet" --hosts "$HOSTS" --pki "$WORK/pki" \
  --ssh-hosts 3 --ssh-port "$SSH_PORT" --ssh-key "$KEY" --python "$PY" --unconfigured 1
INV="$WORK/fleet/inventory"
REPORTS="$WORK/reports"

# The SNE simulator (current GEN, the others revoked) and the asynchronous check settings.
start_sne() {  # start_sne CURRENT REVOKED...
  local cur="$1" rev="" g; shift
  for g in "$@"; do
    rev="$rev${rev:+,}{\"generation\": \"${g^^}\", \"certificate\": \"pki/chiffrement-$g.pem\", \"key\": \"pki/chiffrement-$g.key\"}"
  done
  "$PY" "$COLL/roles/simulate/files/sne_simulator" stop --state-dir "$WORK/sne" >/dev/null 2>&1 || true
  cat > "$WORK/sne.json" <<JSON
{"current": {"generation": "${cur^^}", "certificate": "pki/chiffrement-$cur.pem", "key": "pki/chiffrement-$cur.key"},
 "revoked": [$rev], "transports": {"http": {"port": 0}}}
JSON
  # The lifetime only reaps a simulator this script failed to stop (cleanup stops it): far
  # longer than the whole target takes on a loaded machine.
  "$PY" "$COLL/roles/simulate/files/sne_simulator" start --config "$WORK/sne.json" --state-dir "$WORK/sne" --lifetime 7200 >/dev/null
  SNE_URL="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"]["url"])' "$WORK/sne/simulator.json")"
  cat > "$INV/group_vars/all/sne_async.yml" <<YAML
---
sne_async_check_enabled: true
sne_guichet_async_transport: http
sne_guichet_async_http: {url: "$SNE_URL"}
sne_guichet_async_certificate: {path: "{{ sne_guichet_root }}/opt/guichet/conf/Chiffrement_SNE{{ sne_generation }}.cer", type: der}
async_check_timeout: 20
async_check_poll_interval: 0.5
YAML
}
start_sne v5 v4

export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_FORKS=10
play() { ansible-playbook -i "$INV" -e report_dir="$REPORTS" "$@"; }
check() { "$PY" "$COLL/tests/fleet/check_fleet.py" "$WORK/fleet" "$@"; }
# report FILE PYTHON-ASSERTIONS: run assertions with `r` the parsed report.json, `fleet` fleet.json.
report() {
  "$PY" - "$1" "$WORK/fleet/fleet.json" "$BROKEN" "$UNCONF" <<PYCHECK
import json, sys
r, fleet = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
broken, unconf = sys.argv[3], sys.argv[4]
hosts = {h["host"]: h for h in r["hosts"]}
assert sorted(hosts) == sorted(fleet["hosts"]), ("every host of the group is listed", sorted(hosts))
assert sum(r["totals"].values()) == len(fleet["hosts"]), r["totals"]
$2
PYCHECK
}

check --snapshot "$WORK/baseline.json"

echo "== 0. a target pattern that matches no host fails, naming it"
expect_rc 2 "$WORK/nohost.log" -- play sne.guichet.rotate -e sne_target=guichetz
grep -q "guichetz" "$WORK/nohost.log" || fail "the message does not name the pattern"
grep -q "matches no host" "$WORK/nohost.log" || fail "no 'matches no host' message"
expect_rc 2 "$WORK/naive-time.log" -- play sne.guichet.rotate -e sne_revocation_time=2026-12-01T09:00:00
grep -q "not an ISO 8601 instant with its offset" "$WORK/naive-time.log" || fail "a revocation hour without offset was taken"

echo "== 1. rotate --check --diff changes no byte; its report says DRY RUN"
expect_rc 2 "$WORK/check.log" -- play sne.guichet.rotate --check --diff -e sne_run_id=it-check
healthy "$WORK/check.log" "failed=0" "unreachable=0"
recap "$WORK/check.log" "$BROKEN" "failed=1"
recap "$WORK/check.log" "$UNCONF" "failed=1"
grep -q 'Converge every store' "$WORK/check.log"
check --expect untouched --baseline "$WORK/baseline.json"
[ ! -e "$REPORTS/fleet-V5.json" ] || fail "a check run wrote the fleet state"
[ ! -e "$REPORTS/V5/report.json" ] || fail "a check run wrote the fleet report"
report "$REPORTS/V5/runs/it-check/report.json" '
assert r["check_mode"] is True
assert hosts[broken]["status"] == "failed", hosts[broken]
assert hosts[unconf]["status"] == "unconfigured", hosts[unconf]
assert any(h["status"] == "changed" for h in hosts.values())
for name, h in hosts.items():   # the outbound messages to V4: would be moved, nothing moved
    if fleet["hosts"][name]["outbox"]:
        assert h["outbox"]["retired_messages"] == 2 and len(h["outbox"]["moved"]) == 2, h'
grep -q "DRY RUN" "$REPORTS/V5/runs/it-check/report.html" || fail "no DRY RUN in the check report"
"$PY" "$COLL/tests/report/chromium_check.py" "$REPORTS/V5/runs/it-check/report.html" \
  --report "$REPORTS/V5/runs/it-check/report.json" --text "DRY RUN" --screenshot "$ARTEFACTS/check-report.png"

echo "== 2. rotate"
expect_rc 2 "$WORK/run1.log" -- play sne.guichet.rotate -e sne_run_id=it-1 -e sne_revocation_time=2099-01-01T09:00:00Z
grep -q "V4: revoked by the CRL of AC SNE V4 (test) since 2016-01-07 08:00:00 UTC" "$WORK/run1.log" \
  || fail "the summary does not say V4 is revoked by its CRL"
healthy "$WORK/run1.log" "failed=0" "unreachable=0"
recap "$WORK/run1.log" "$BROKEN" "failed=1"
recap "$WORK/run1.log" "$UNCONF" "failed=1"
grep -q 'guichet-00[1-3].*unreachable=0' "$WORK/run1.log"   # the SSH hosts were reached
check --expect rotated --baseline "$WORK/baseline.json"
report "$REPORTS/V5/report.json" '
assert r["check_mode"] is False and r["run_id"] == "it-1" and r["revocation_time"]
rev = {e["generation"]: e for e in r["revocation"]}   # proven by the CRLs (sne_bundle_crls)
assert rev["V4"]["revoked"] is True and rev["V4"]["revoked_at"] == "2016-01-07T08:00:00+00:00", r["revocation"]
assert rev["V5"]["revoked"] is False and rev["V4"]["authority"] == "AC SNE V4 (test)", r["revocation"]
for name, h in hosts.items():
    kind = fleet["hosts"][name]["kind"]
    assert h["run_id"] == "it-1" and h["in_this_run"], h
    if name == broken:
        assert h["status"] == "failed" and "password" in h["reason"], h
    elif name == unconf:
        assert h["status"] == "unconfigured", h
        assert h["reason"].startswith("no sne_guichet_stores declared for this host"), h
    else:
        assert h["status"] == ("ok" if kind == "v5" else "changed"), h
        assert h["probe"]["status"] == "passed", h
        assert all(s["after"] == ["V5"] for s in h["stores"]), h
    if kind in ("v4", "stray", "odd_alias"):
        assert h["backup_dir"].endswith("/it-1") and any(s["before"] == ["V4"] for s in h["stores"]), h
    outbox = fleet["hosts"][name]["outbox"]
    if outbox:   # reported and quarantined: the messages to V4 only
        to_v4 = sorted(p for p, m in outbox["messages"].items() if m["to"] == "v4")
        assert h["outbox"]["retired_messages"] == 2 and sorted(h["outbox"]["moved"]) == to_v4, h
        assert h["outbox"]["left"] == [] and h["outbox"]["oldest"] == "2016-01-06T18:02:11Z", h
    else:
        assert h["outbox"]["retired_messages"] == 0, h
assert any(fleet["hosts"][n]["outbox"] for n in hosts), "no host with an outbox in this fleet"
nss = [n for n in hosts if fleet["hosts"][n].get("nss")]   # an NSS database rotated (certutil)
assert nss and all(any(s["type"] == "nss" and s["changed"] and s["after"] == ["V5"] for s in hosts[n]["stores"])
                   for n in nss), [hosts[n]["stores"] for n in nss]
assert r["totals"]["failed"] == 1 and r["totals"]["unconfigured"] == 1, r["totals"]
print("report: every host accounted for, healthy ones passed the asynchronous check")'
cmp -s "$REPORTS/V5/report.json" "$REPORTS/V5/runs/it-1/report.json" || fail "fleet report and run report differ"
"$PY" - "$REPORTS/V5/junit.xml" "$HOSTS" "$BROKEN" "$UNCONF" <<'PYJUNIT'
import sys
from junitparser import JUnitXml, Failure
xml = JUnitXml.fromfile(sys.argv[1])
cases = [c for suite in (xml if hasattr(xml, "__iter__") else [xml]) for c in suite]
names = sorted(c.name for c in cases)
assert len(names) == int(sys.argv[2]) == len(set(names)), names
failed = sorted(c.name for c in cases if any(isinstance(x, Failure) for x in c.result))
assert failed == sorted([sys.argv[3], sys.argv[4]]), failed
print("junit.xml: %d cases, failures %s" % (len(names), failed))
PYJUNIT
"$PY" "$COLL/tests/report/chromium_check.py" "$REPORTS/V5/report.html" \
  --report "$REPORTS/V5/report.json" --screenshot "$ARTEFACTS/fleet-report.png"

echo "== 2b. the judge can fail: faults planted in a copy of the rotated fleet, each caught"
# check_fleet.py judges every step: each of its checks must fail on the fault it exists for.
# The copy's fleet.json points at the copy; the files are the rotated ones, byte for byte (the
# absolute paths inside them still name the fleet, which no check compares). Each fault is
# planted in one host of the copy, judged with --host, and undone by copying the host back.
PLANTED="$WORK/planted"
cp -a "$WORK/fleet" "$PLANTED"
"$PY" - "$WORK/fleet" "$PLANTED" <<'PYCOPY'
import json, os, sys
old, new = (os.path.join(p, "") for p in sys.argv[1:3])
def moved(value):
    if isinstance(value, dict):
        return {moved(k): moved(v) for k, v in value.items()}  # stray_sha256 is keyed by path
    if isinstance(value, list):
        return [moved(v) for v in value]
    return new + value[len(old):] if isinstance(value, str) and value.startswith(old) else value
path = os.path.join(new, "fleet.json")
json.dump(moved(json.load(open(path))), open(path, "w"), indent=2)
PYCOPY
judge() { "$PY" "$COLL/tests/fleet/check_fleet.py" "$PLANTED" "$@"; }
expect_rc 0 "$WORK/planted-clean.log" -- judge --expect rotated --baseline "$WORK/baseline.json"
judge --snapshot "$WORK/planted-rotated.json" >/dev/null
# The hosts to plant in: a v4 host (without PKCS#12 if there is one: fewer JVMs), a host with a
# PKCS#12 store, the stray host, a host already on V5.
read -r V4H P12H STRAYH V5H < <("$PY" - "$PLANTED/fleet.json" <<'PYHOSTS'
import json, sys
hosts = sorted(json.load(open(sys.argv[1]))["hosts"].items())
v4 = sorted((h["has_p12"], n) for n, h in hosts if h["kind"] == "v4")[0][1]
p12 = [n for n, h in hosts if h["has_p12"] and h["kind"] in ("v4", "stray", "odd_alias")][0]
print(v4, p12, [n for n, h in hosts if h["kind"] == "stray"][0], [n for n, h in hosts if h["kind"] == "v5"][0])
PYHOSTS
)
# plant HOST FAULT: plant one fault in the copy, by other means than the collection.
plant() {
  "$PY" - "$PLANTED" "$1" "$2" "$COLL/tests/fleet" <<'PYPLANT'
import base64, hashlib, os, re, shutil, subprocess, sys
outdir, name, fault = sys.argv[1:4]
sys.path.insert(0, sys.argv[4])
import check_fleet  # its reading of fleet.json and the PKI; keytool_entries to find an alias
fleet = check_fleet.Fleet(outdir)
host = fleet.hosts[name]
store = {s["type"]: s for s in host["stores"]}
jks, conf, stray = store["jks"], host["config_files"][0], (host["strays"] or [None])[-1]

def keytool(path, password, *args):
    storetype = "PKCS12" if path.endswith(".p12") else "JKS"
    subprocess.run(["keytool"] + check_fleet.JOPTS + list(args) + ["-noprompt", "-keystore", path,
                   "-storetype", storetype, "-storepass", password], check=True, capture_output=True,
                   env=check_fleet.JAVA_ENV)

def edit(path, change):
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(change(data))

def flip(data):  # one byte changed, same size
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]

def quarantined(path):
    for dirpath, _dirs, files in os.walk(host["quarantine_dir"]):
        for f in files:
            full = os.path.join(dirpath, f)
            if f == os.path.basename(path):
                with open(full, "rb") as fh:
                    if hashlib.sha256(fh.read()).hexdigest() == host["stray_sha256"][path]:
                        return full
    raise SystemExit("plant: no quarantined copy of %s" % path)

if fault == "stray_back":            # copied back from the quarantine: a stray not moved
    shutil.copy2(quarantined(stray), stray)
elif fault == "stray_deleted":       # deleted instead of moved: nothing in the quarantine
    os.remove(quarantined(stray))
elif fault == "key_deleted":
    keytool(jks["path"], jks["password"], "-delete", "-alias", fleet.key_alias)
elif fault == "key_as_certificate":  # the key entry's certificate kept, the private key lost
    cert = os.path.join(outdir, "key.der")
    keytool(jks["path"], jks["password"], "-exportcert", "-alias", fleet.key_alias, "-file", cert)
    keytool(jks["path"], jks["password"], "-delete", "-alias", fleet.key_alias)
    keytool(jks["path"], jks["password"], "-importcert", "-alias", fleet.key_alias, "-file", cert)
    os.remove(cert)
elif fault == "v5_missing":          # from the PKCS#12 truststore, under whatever alias it has
    p12 = store["pkcs12"]
    entries = check_fleet.keytool_entries(p12["path"], "PKCS12", p12["password"])
    alias = [e["alias"] for e in entries if fleet.fp["v5"] in e["sha256"]][0]
    keytool(p12["path"], p12["password"], "-delete", "-alias", alias)
elif fault == "v4_in_store":
    with open(fleet.pem_path["v4"], "rb") as fh:
        v4 = fh.read()
    edit(store["pem"]["path"], lambda data: data + v4)
elif fault == "comment_lost":        # the PEM bundle's leading comment line
    edit(store["pem"]["path"], lambda data: data.split(b"\n", 1)[1])
elif fault == "dangling_link":
    os.symlink("gone.pem", os.path.join(store["pem_dir"]["path"], "0badc0de.0"))
elif fault == "v4_hashed":           # V4 and its authority back in the hashed folder, rehashed
    for role in ("v4", "ac_v4"):
        shutil.copyfile(fleet.pem_path[role], os.path.join(store["pem_dir"]["path"], "old-%s.pem" % role))
    subprocess.run(["openssl", "rehash", store["pem_dir"]["path"]], check=True, capture_output=True)
elif fault == "links_removed":       # the hashed folder's PEM files kept, its hash links gone
    folder = store["pem_dir"]["path"]
    for f in os.listdir(folder):
        if os.path.islink(os.path.join(folder, f)):
            os.remove(os.path.join(folder, f))
elif fault == "v4_base64":           # in the configuration (a place the run may change)
    b64 = base64.b64encode(fleet.der["v4"])  # in lines of 53 ending CRLF and a space
    edit(conf, lambda data: data + b"# kept just in case:\n" + re.sub(rb"(.{1,53})", rb"\1\r\n ", b64))
elif fault == "config_v4":
    edit(conf, lambda data: data.replace(b"sne-chiffrement-v5", b"sne-chiffrement-v4"))
elif fault == "reload_marker":       # the reload log is there, without the reload's line
    open(host["reload_log"], "wb").close()
elif fault == "reload_log":
    os.remove(host["reload_log"])
elif fault == "refresh_missing":
    open(host["refresh_log"], "wb").close()
elif fault == "outbox_back":         # a message to V4 copied back from the quarantine
    path = sorted(p for p, m in host["outbox"]["messages"].items() if m["to"] == "v4")[0]
    shutil.copy2([os.path.join(d, f) for d, _x, fs in os.walk(host["quarantine_dir"]) for f in fs
                  if f == os.path.basename(path)][0], path)
elif fault == "outbox_v5_gone":      # a message to V5 taken away
    os.remove([p for p, m in host["outbox"]["messages"].items() if m["to"] == "v5"][0])
elif fault.startswith("nss_"):       # the NSS database, changed with certutil
    nss = store["nss"]
    if fault == "nss_trust":         # the new authority trusted as a peer only
        check_fleet.certutil(nss["path"], nss["password"], "-M", "-n", "sne-ac-v5", "-t", "P,,")
    elif fault == "nss_v4_back":     # V4 imported again under another nickname
        der = os.path.join(outdir, "v4.der")
        with open(der, "wb") as fh:
            fh.write(fleet.der["v4"])
        check_fleet.certutil(nss["path"], nss["password"], "-A", "-n", "V4 again", "-t", "P,,", "-i", der)
        os.remove(der)
    elif fault == "nss_key_deleted": # the key pair's private key and certificate
        check_fleet.certutil(nss["path"], nss["password"], "-F", "-n", host["nss"]["key"])
elif fault == "collateral":          # an unrelated file under the host root
    edit(os.path.join(host["root"], "opt/guichet/app/bin/guichet.sh"), lambda data: data + b"# edited\n")
elif fault == "mode":
    os.chmod(jks["path"], 0o644)
elif fault == "config_edited":       # on a host that had nothing to change
    edit(conf, lambda data: data + b"# edited\n")
elif fault == "store_byte":
    edit(jks["path"], flip)
elif fault == "file_byte":
    edit(os.path.join(host["root"], "opt/guichet/app/lib/guichet-core.jar"), flip)
else:
    raise SystemExit("plant: unknown fault %s" % fault)
PYPLANT
}
missed=() planted_count=0
# planted HOST FAULT MESSAGE CHECK-OPTIONS...: check_fleet.py --host HOST exits 1, its line for
# HOST says FAIL and MESSAGE is among its problems; then the host is copied back.
planted() {
  local host="$1" fault="$2" want="$3" log="$WORK/planted-$2.log" rc=0; shift 3
  planted_count=$((planted_count + 1))
  plant "$host" "$fault"
  judge "$@" --host "$host" -v > "$log" 2>&1 || rc=$?
  if [ "$rc" -ne 1 ] || ! grep -qE "^$host +[a-z0-9_]+ +(yes|no) +FAIL " "$log" || ! grep -qF -- "$want" "$log"; then
    missed+=("$fault on $host (rc $rc, no '$want': $log)")
  fi
  rm -rf "${PLANTED:?}/roots/$host"
  cp -a "$WORK/fleet/roots/$host" "$PLANTED/roots/$host"
}
ROTATED=(--expect rotated --baseline "$WORK/baseline.json")
CONF=opt/guichet/conf
STRAY_REL="$("$PY" -c 'import json, os, sys; h = json.load(open(sys.argv[1]))["hosts"][sys.argv[2]]; print(os.path.relpath(h["strays"][-1], h["root"]))' "$PLANTED/fleet.json" "$STRAYH")"
planted "$STRAYH" stray_back "stray $STRAY_REL not moved" "${ROTATED[@]}"
planted "$STRAYH" stray_deleted "stray $STRAY_REL not in quarantine with its original content" "${ROTATED[@]}"
planted "$V4H" key_deleted "$CONF/app.jks: private key entry 'guichet' lost or changed" "${ROTATED[@]}"
planted "$V4H" key_as_certificate "$CONF/app.jks: private key entry 'guichet' lost or changed" "${ROTATED[@]}"
planted "$P12H" v5_missing "$CONF/trust.p12: v5 missing" "${ROTATED[@]}"
planted "$V4H" v4_in_store "$CONF/sne.pem: v4 still there" "${ROTATED[@]}"
planted "$V4H" comment_lost "$CONF/sne.pem: leading comment line lost" "${ROTATED[@]}"
planted "$V4H" dangling_link "etc/guichet/certs: dangling link 0badc0de.0" "${ROTATED[@]}"
planted "$V4H" v4_hashed "etc/guichet/certs: openssl verify -CApath still accepts V4" "${ROTATED[@]}"
planted "$V4H" links_removed "etc/guichet/certs: openssl verify -CApath fails for V5" "${ROTATED[@]}"
planted "$V4H" v4_base64 "V4 left in $CONF/guichet.properties (v4 base64)" "${ROTATED[@]}"
planted "$V4H" config_v4 "$CONF/guichet.properties: still sne-chiffrement-v4" "${ROTATED[@]}"
planted "$V4H" reload_marker "reload command did not run" "${ROTATED[@]}"
planted "$V4H" reload_log "reload command did not run (no var/log/guichet-reload.log)" "${ROTATED[@]}"
planted "$V4H" refresh_missing "trust anchors refresh did not run" "${ROTATED[@]}"
OUTH="$("$PY" -c 'import json, sys; print([n for n, h in sorted(json.load(open(sys.argv[1]))["hosts"].items()) if h["outbox"]][0])' "$PLANTED/fleet.json")"
planted "$OUTH" outbox_back "stray var/spool/guichet/out/0001-demande.p7m not moved" "${ROTATED[@]}"
planted "$OUTH" outbox_v5_gone "outbox var/spool/guichet/out/0003-demande.p7m (to v5) moved or changed" "${ROTATED[@]}"
NSSH="$("$PY" -c 'import json, sys; print([n for n, h in sorted(json.load(open(sys.argv[1]))["hosts"].items()) if h.get("nss")][0])' "$PLANTED/fleet.json")"
planted "$NSSH" nss_trust "etc/pki/nssdb: ac_v5 has the trust 'P,,', not 'C,,'" "${ROTATED[@]}"
planted "$NSSH" nss_v4_back "etc/pki/nssdb: v4 still there" "${ROTATED[@]}"
planted "$NSSH" nss_key_deleted "etc/pki/nssdb: private keys changed" "${ROTATED[@]}"
planted "$V4H" collateral "changed outside stores/config/logs/backups/quarantine: changed opt/guichet/app/bin/guichet.sh" "${ROTATED[@]}"
planted "$V4H" mode "mode 0640->0644 $CONF/app.jks" "${ROTATED[@]}"
planted "$V5H" config_edited "host already on V5 changed: changed $CONF/guichet.properties" "${ROTATED[@]}"
planted "$BROKEN" store_byte "broken host changed: changed $CONF/app.jks" "${ROTATED[@]}"
planted "$V4H" file_byte "changed: changed opt/guichet/app/lib/guichet-core.jar" --expect untouched --baseline "$WORK/planted-rotated.json"
[ "${#missed[@]}" -eq 0 ] || fail "check_fleet.py missed planted faults: ${missed[*]}"
echo "check_fleet.py caught each of $planted_count planted faults"
rm -rf "$PLANTED"

echo "== 3. rotate again: changed=0 and failed=0 on every healthy host"
expect_rc 2 "$WORK/run2.log" -- play sne.guichet.rotate -e sne_run_id=it-2
healthy "$WORK/run2.log" "changed=0" "failed=0" "unreachable=0"
recap "$WORK/run2.log" "$BROKEN" "changed=0.*failed=1"
check --expect rotated --baseline "$WORK/baseline.json"
report "$REPORTS/V5/report.json" '
assert all(h["outbox"]["retired_messages"] == 0 and not h["outbox"]["moved"] for h in hosts.values()), [
    h["outbox"] for h in hosts.values()]'

echo "== 4. audit (read-only) proposes host_vars for the unconfigured host"
check --snapshot "$WORK/after-run2.json"
expect_rc 2 "$WORK/audit.log" -- play sne.guichet.audit -e sne_run_id=it-audit
healthy "$WORK/audit.log" "changed=0" "failed=0"
recap "$WORK/audit.log" "$UNCONF" "changed=0.*failed=1"
check --expect untouched --baseline "$WORK/after-run2.json"
report "$REPORTS/V5/audit/report.json" '
assert r["kind"] == "audit"
assert [(e["generation"], e["revoked"]) for e in r["revocation"]] == [("V5", False), ("V4", True)], r["revocation"]
assert hosts[unconf]["status"] == "unconfigured" and hosts[unconf]["proposal"], hosts[unconf]
assert "audit/host_vars/" in hosts[unconf]["reason"], hosts[unconf]
for name, h in hosts.items():
    if name not in (broken, unconf):
        assert h["status"] == "ok", h   # V5 everywhere, no V4 left
assert hosts[broken]["status"] == "attention", hosts[broken]   # still V4: it failed'
PROPOSAL="$REPORTS/V5/audit/host_vars/$UNCONF.yml"
[ -s "$PROPOSAL" ] || fail "no proposal for $UNCONF"
"$PY" "$COLL/tests/report/chromium_check.py" "$REPORTS/V5/audit/report.html" \
  --report "$REPORTS/V5/audit/report.json" --screenshot "$ARTEFACTS/audit-report.png"

echo "== 5a. repair the broken host, retry it alone with --limit"
"$PY" - "$INV/host_vars/$BROKEN.yml" "$WORK/fleet/fleet.json" "$BROKEN" <<'PYFIX'
import json, sys, yaml
path, fleet, host = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
hv = yaml.safe_load(open(path))
real = {s["path"]: s.get("password") for s in fleet["hosts"][host]["stores"]}
for store in hv["sne_guichet_stores"]:
    if store.get("password"):
        store["password"] = real[store["path"]]
open(path, "w").write("---\n" + yaml.safe_dump(hv, sort_keys=False))
PYFIX
cp "$REPORTS/fleet-V5.json" "$WORK/state-before-retry.json"
expect_rc 0 "$WORK/retry.log" -- play sne.guichet.rotate --limit "$BROKEN" -e sne_run_id=it-3
grep -q "Fetch and verify the bundle" "$WORK/retry.log" || fail "the bundle was not verified under --limit"
recap "$WORK/retry.log" "$BROKEN" "changed=[1-9].*failed=0"
check --expect rotated --baseline "$WORK/baseline.json" --repaired "$BROKEN"
report "$REPORTS/V5/report.json" '
before = json.load(open("'"$WORK/state-before-retry.json"'"))["hosts"]
assert r["limit"] == broken and r["run_id"] == "it-3"
assert hosts[broken]["status"] == "changed" and hosts[broken]["run_id"] == "it-3", hosts[broken]
for name, h in hosts.items():
    if name != broken:
        assert not h["in_this_run"] and h["run_id"] == before[name]["run_id"] == "it-2", h
        assert h["status"] == before[name]["status"], (h, before[name])
assert r["totals"]["failed"] == 0, r["totals"]
print("retry: %s now changed, every other host as run it-2 left it" % broken)'

echo "== 5b. the unconfigured host, given the audit's proposal (passwords filled in), converges"
# Until then, a rotation of it fails and points to the audit's proposal.
expect_rc 2 "$WORK/before-adopt.log" -- play sne.guichet.rotate --limit "$UNCONF" -e sne_run_id=it-3b
report "$REPORTS/V5/report.json" '
assert "proposal from the last audit: " in hosts[unconf]["reason"] and hosts[unconf]["reason"].endswith(
    "V5/audit/host_vars/%s.yml" % unconf), hosts[unconf]'
"$PY" - "$PROPOSAL" "$INV/host_vars/$UNCONF.yml" "$WORK/fleet/fleet.json" "$UNCONF" <<'PYADOPT'
import json, re, sys, yaml
proposal, path, fleet, host = yaml.safe_load(open(sys.argv[1])), sys.argv[2], json.load(open(sys.argv[3])), sys.argv[4]
real = {s["path"]: s.get("password") for s in fleet["hosts"][host]["stores"]}
refresh = {s["path"]: s.get("refresh") for s in fleet["hosts"][host]["stores"]}
for store in proposal["sne_guichet_stores"]:
    if "password" in store:
        assert re.fullmatch(r"\{\{ vault_\w+ \}\}", store["password"]), store
        store["password"] = real[store["path"]]
    if store["type"] == "debian":  # the simulated host's harmless update-ca-certificates, not the CI machine's
        store["refresh"] = refresh[store["path"]]
declared = sorted(s["path"] for s in proposal["sne_guichet_stores"] if not s.get("create"))
expected = sorted(s["path"] for s in fleet["hosts"][host]["stores"] if not s.get("create"))
assert declared == expected, (declared, expected)
# The proposal rewrites references to retired *files*; a retired JKS alias named in a
# configuration file is only a note (the scan does not search aliases): the operator adds that
# rewrite, as the note says.
text = open(sys.argv[1]).read()
assert "under the aliases" in text and "sne-chiffrement-v4" in text, "no note on the retired alias"
properties = [e["path"] for e in proposal["sne_guichet_config_files"]][0]
proposal["sne_guichet_config_files"].append(
    {"path": properties, "regexp": "sne-chiffrement-v[0-9]+", "replace": "sne-chiffrement-{{ sne_generation | lower }}"})
hv = yaml.safe_load(open(path))
hv.update({k: v for k, v in proposal.items() if k.startswith("sne_guichet_")})
open(path, "w").write("---\n" + yaml.safe_dump(hv, sort_keys=False))
print("proposal adopted: %d stores, %d configuration rewrites"
      % (len(proposal["sne_guichet_stores"]), len(proposal.get("sne_guichet_config_files", []))))
PYADOPT
expect_rc 0 "$WORK/adopt.log" -- play sne.guichet.rotate --limit "$UNCONF" -e sne_run_id=it-4
recap "$WORK/adopt.log" "$UNCONF" "changed=[1-9].*failed=0"
expect_rc 0 "$WORK/adopt2.log" -- play sne.guichet.rotate --limit "$UNCONF" -e sne_run_id=it-5
recap "$WORK/adopt2.log" "$UNCONF" "changed=0.*failed=0"
check --expect rotated --baseline "$WORK/baseline.json" --repaired "$BROKEN" --configured "$UNCONF"
report "$REPORTS/V5/report.json" '
assert all(h["status"] in ("ok", "changed") for h in hosts.values()), r["totals"]
assert hosts[unconf]["run_id"] == "it-5" and hosts[broken]["run_id"] == "it-3"'

echo "== 6. the next rotation, V5 -> V6, by variables only"
"$PY" - "$WORK/pki/manifest.json" "$WORK/v6.yml" <<'PYV6'
import json, os, sys
m = json.load(open(sys.argv[1]))
c, pki = m["certificates"], os.path.dirname(sys.argv[1])
lines = ["---", "sne_generation: V6",
         "sne_bundle_src: %s" % os.path.join(pki, m["bundles"]["good-v6"]["file"]),
         'sne_certificate_sha256: "%s"' % c["chiffrement-v6"]["sha256"],
         'sne_authority_sha256: ["%s"]' % c["ac-v6"]["sha256"],
         'sne_retired_sha256: ["%s", "%s", "%s", "%s"]' % tuple(
             c[i]["sha256"] for i in ("chiffrement-v5", "ac-v5", "chiffrement-v4", "ac-v4")),
         # retire's own variable (sne_retired_certificates also feeds the bundle's CRL checks):
         # the retired certificates whose queued messages it looks for; JSON is YAML.
         "retire_certificates: %s" % json.dumps(
             [open(os.path.join(pki, c[i]["path"])).read() for i in ("chiffrement-v5", "chiffrement-v4")]),
         # the revocation the CRLs prove this time: V6 not revoked, V5 revoked by AC SNE V5
         "sne_bundle_crls: %s" % json.dumps([os.path.join(pki, m["crls"]["ac-v6"]["der"]),
                                             os.path.join(pki, m["crls"]["ac-v5-revokes-v5"]["pem"])]),
         "sne_retired_certificates: %s" % json.dumps(
             [open(os.path.join(pki, c[i]["path"])).read() for i in ("chiffrement-v5", "ac-v5")]),
         "sne_retired_generation: V5", "sne_require_retired_revoked: true"]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PYV6
start_sne v6 v5 v4
check --snapshot "$WORK/after-v5.json"
expect_rc 0 "$WORK/v6.log" -- play sne.guichet.rotate -e @"$WORK/v6.yml" -e sne_run_id=it-v6
healthy "$WORK/v6.log" "failed=0" "unreachable=0"
check --expect rotated --generation V6 --baseline "$WORK/after-v5.json" --repaired "$BROKEN" --configured "$UNCONF"
if [ ! -s "$REPORTS/fleet-V6.json" ] || [ ! -s "$REPORTS/fleet-V5.json" ]; then fail "V5 and V6 fleet states are not separate"; fi
report "$REPORTS/V6/report.json" '
assert r["generation"] == "V6" and r["run_id"] == "it-v6"
assert [(e["generation"], e["revoked"]) for e in r["revocation"]] == [("V6", False), ("V5", True)], r["revocation"]
for h in hosts.values():
    assert h["status"] == "changed" and h["probe"]["status"] == "passed", h
    assert all(s["after"] == ["V6"] for s in h["stores"]), h
    # every store held V5, but the DER file named after V6, which the run created
    assert all(("V5" in s["before"]) is (s["type"] != "der") for s in h["stores"]), h
v5 = json.load(open("'"$REPORTS/fleet-V5.json"'"))
assert v5["generation"] == "V5" and all(x["run_id"] != "it-v6" for x in v5["runs"]), v5["runs"]'
expect_rc 0 "$WORK/v6-again.log" -- play sne.guichet.rotate -e @"$WORK/v6.yml" -e sne_run_id=it-v6b
healthy "$WORK/v6-again.log" "changed=0" "failed=0"

echo "== 7. rollback: refused after the revocation hour without force"
check --snapshot "$WORK/after-v6.json"
expect_rc 2 "$WORK/rollback-refused.log" -- play sne.guichet.rollback -e sne_rollback_run_id=it-v6 \
  -e sne_revocation_time=2020-01-01T09:00:00Z
grep -q "sne_rollback_force" "$WORK/rollback-refused.log" || fail "the refusal does not say how to force"
check --expect untouched --baseline "$WORK/after-v6.json"

echo "== 7b. rollback of the V6 run, twice: the V5 bytes again, the second time changed=0"
expect_rc 0 "$WORK/rollback-it-v6.log" -- play sne.guichet.rollback -e sne_rollback_run_id=it-v6
expect_rc 0 "$WORK/rollback2-it-v6.log" -- play sne.guichet.rollback -e sne_rollback_run_id=it-v6
healthy "$WORK/rollback2-it-v6.log" "changed=0" "failed=0"
check --expect untouched --baseline "$WORK/after-v5.json" \
  --ignore var/backups --ignore var/lib/sne-guichet --ignore var/log

echo "== 7c. rollback of the V5 runs, newest first, each twice: the original bytes"
for run in it-4 it-3 it-1; do
  expect_rc 0 "$WORK/rollback-$run.log" -- play sne.guichet.rollback -e sne_rollback_run_id="$run"
  expect_rc 0 "$WORK/rollback2-$run.log" -- play sne.guichet.rollback -e sne_rollback_run_id="$run"
  healthy "$WORK/rollback2-$run.log" "changed=0" "failed=0"
done
check --expect untouched --baseline "$WORK/baseline.json" \
  --ignore var/backups --ignore var/lib/sne-guichet --ignore var/log
echo "fleet rotation: all checks passed"
