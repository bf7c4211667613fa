#!/usr/bin/env bash
# A rotation on a fleet where things go wrong: 20 simulated hosts (tests/fleet/make_fleet.py,
# three over a real sshd on loopback), the SNE simulator for the asynchronous check, the real
# playbooks; every host judged by tests/fleet/check_fleet.py (keytool, openssl, tree digests),
# the reports read back. The faults, each on its own host:
#
#   unreachable (2, 10%)  SSH hosts whose ansible_port is a closed port: "not reached";
#   failing mid-run (2)   after the check run, one store of each made unusable in a way root
#                         cannot bypass (chmod 000 does not stop root): sne.pem made immutable
#                         (chattr +i: read fine, planned fine, its rename refused - the host fails
#                         while writing; garbage bytes where the file system has no immutable
#                         bit), and trust.p12 replaced by a folder (the read fails: nothing of
#                         the host is written, all_or_nothing);
#   probe timeout         its asynchronous check goes to a drop folder nobody answers: stores
#                         converged, host failed with the probe's reason;
#   controller probe      its Python has no cryptography and its PATH no openssl: the probe
#                         on the host stops with no_backend, the role probes from the controller;
#   attention             an undeclared JKS holding V4 under its search paths: left alone, listed;
#   quarantine collision  its stray's place in the run's quarantine is taken by an earlier copy:
#                         never written over, the stray left in place, the host failed, naming it;
#   plus make_fleet's broken host (wrong JKS password) and an unconfigured host.
#
#   1. rotate --check on the mid-run and unreachable hosts: no byte changes; the mid-run hosts
#      would change, the unreachable ones are "not reached";
#   2. the two mid-run faults are planted; rotate: rc 2, the recap fails exactly the faulty
#      hosts, the others converge (check_fleet), the failed ones are as the fault left them;
#      report.json gives each failure its status and a reason naming its cause; junit.xml
#      fails exactly the hosts needing action;
#   3. repair (the right port, the store put back, the answering transport, the password) and
#      rotate again without --limit: the repaired hosts converge, every host already done has
#      changed=0 and is byte-identical to what run 2 left.
set -euo pipefail

COLL="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/sne/guichet"
PY="$ANSIBLE_TEST_PYTHON_INTERPRETER"
WORK="$(mktemp -d /tmp/sne-faults.XXXXXX)"
HOSTS=20
# Roles by host (make_fleet kinds: index 3 broken, every fifth v5, the last unconfigured, the
# others used here v4; checked below against fleet.json).
BROKEN=guichet-004
UNREACH=(guichet-006 guichet-007)
IMMUTABLE=guichet-008   # opt/guichet/conf/sne.pem made immutable after the check run
DIRSTORE=guichet-009    # opt/guichet/conf/trust.p12 replaced by a folder after the check run
TIMEOUT=guichet-011
FALLBACK=guichet-012
ATTENTION=guichet-013
COLLISION=guichet-014
UNCONF="$(printf 'guichet-%03d' "$HOSTS")"
IMM_STORE=""
ARTEFACTS="${SNE_ARTEFACTS:-/tmp/sne-artefacts}/fleet_faults"  # logs and reports of a failed run
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    if mkdir -p "$ARTEFACTS"; then cp -r "$WORK"/*.log "$WORK/reports" "$ARTEFACTS/" 2>/dev/null || true; fi
    echo "logs and reports kept in $ARTEFACTS"
  fi
  [ -z "$IMM_STORE" ] || chattr -i "$IMM_STORE" 2>/dev/null || true
  bash "$COLL/tests/fleet/sshd.sh" stop "$WORK/sshd" >/dev/null 2>&1 || true
  "$PY" "$COLL/roles/simulate/files/sne_simulator" stop --state-dir "$WORK/sne" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "== $* (${SECONDS}s)"; }

# recap LOG HOST PATTERN: the PLAY RECAP line of HOST matches PATTERN.
recap() {
  local line
  line="$(sed -n '/^PLAY RECAP/,$p' "$1" | grep -E "^$2 " || true)"
  echo "$line" | grep -qE -- "$3" || fail "$1: $2 recap is '${line:-missing}', expected $3"
}
# recaps LOG PATTERN HOST...: the recap line of every HOST matches PATTERN.
recaps() {
  local log="$1" pattern="$2" host; shift 2
  for host in "$@"; do recap "$log" "$host" "$pattern"; done
}
member() {  # member WORD LIST...
  local word="$1" item; shift
  for item in "$@"; do [ "$item" != "$word" ] || return 0; done
  return 1
}
# failed_exactly LOG HOST...: every host of the fleet is in the recap, failed=1 for these
# hosts and failed=0 for all the others.
failed_exactly() {
  local log="$1" host; shift
  [ "$(sed -n '/^PLAY RECAP/,$p' "$log" | grep -cE '^guichet-')" -eq "$HOSTS" ] || fail "$log: not every host in the recap"
  for host in "${ALL[@]}"; do
    if member "$host" "$@"; then recap "$log" "$host" "failed=1"; else recap "$log" "$host" "failed=0"; fi
  done
}
# but LIST... -- HOST...: the hosts of LIST that are not among the HOSTs, one a line.
but() {
  local list=() host
  while [ "$1" != "--" ]; do list+=("$1"); shift; done; shift
  for host in "${list[@]}"; do member "$host" "$@" || echo "$host"; done
}
expect_rc() {  # expect_rc RC LOG -- command...
  local want="$1" log="$2" rc=0; shift 3
  "$@" > "$log" 2>&1 || rc=$?
  [ "$rc" -eq "$want" ] || { tail -60 "$log"; fail "$* exited $rc, expected $want (log $log)"; }
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

step "the fleet: $HOSTS hosts, the simulator, the standing faults"
"$PY" "$COLL/roles/simulate/files/make_pki.py" "$WORK/pki" --keys "$COLL/tests/pki/keys" >/dev/null
SSH_PORT="$(free_port)"
CLOSED_PORT="$(free_port)"   # bound then released: nothing listens there
KEY="$(bash "$COLL/tests/fleet/sshd.sh" start "$WORK/sshd" "$SSH_PORT")"
"$PY" "$COLL/tests/fleet/make_fleet.py" "$WORK/fleet" --hosts "$HOSTS" --pki "$WORK/pki" \
  --ssh-hosts 3 --ssh-port "$SSH_PORT" --ssh-key "$KEY" --python "$PY" --unconfigured 1
INV="$WORK/fleet/inventory"
REPORTS="$WORK/reports"
mapfile -t ALL < <(printf 'guichet-%03d\n' $(seq 1 "$HOSTS"))
root_of() { echo "$WORK/fleet/roots/$1"; }

# The SNE simulator on V5 (V4 revoked) and the asynchronous check, as rotate_fleet sets them.
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
sne_guichet_async_certificate: {path: "{{ sne_guichet_root }}/opt/guichet/conf/Chiffrement_SNE{{ sne_generation }}.cer", type: der}
async_check_timeout: 20
async_check_poll_interval: 0.5
YAML

# The standing faults, by editing the inventory and the host roots (never the collection).
"$PY" - "$WORK" "$CLOSED_PORT" "$PY" "${UNREACH[@]}" "$TIMEOUT" "$FALLBACK" "$ATTENTION" "$COLLISION" "$DIRSTORE" <<'PYPLANT'
import json, os, shutil, sys, yaml
work, closed, python = sys.argv[1], int(sys.argv[2]), sys.argv[3]
unreach, timeout, fallback, attention, collision, dirstore = sys.argv[4:6], *sys.argv[6:11]
fleet = json.load(open(os.path.join(work, "fleet/fleet.json")))["hosts"]
for name in unreach + [timeout, fallback, attention, collision, dirstore]:
    assert fleet[name]["kind"] == "v4", (name, fleet[name]["kind"], "make_fleet's kinds moved")
assert fleet[dirstore]["has_p12"], "the folder fault needs the PKCS#12 store"
inv = os.path.join(work, "fleet/inventory")

def load(path):
    with open(path) as fh:
        return yaml.safe_load(fh)

def dump(path, data):
    with open(path, "w") as fh:
        fh.write("---\n" + yaml.safe_dump(data, sort_keys=False))

hosts = load(os.path.join(inv, "hosts.yml"))
group = hosts["all"]["children"]["guichets"]["hosts"]
for name in unreach:  # an SSH host like guichet-001, on a port nobody listens on
    group[name] = dict(group["guichet-001"], ansible_port=closed)
# No cryptography (no site-packages: python -S) and no openssl on the PATH (every other
# command is there): async_probe cannot encrypt on this host.
nossl = os.path.join(work, "bin-without-openssl")
os.makedirs(nossl)
for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
    for tool in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if tool != "openssl" and not os.path.lexists(os.path.join(nossl, tool)):
            os.symlink(os.path.join(folder, tool), os.path.join(nossl, tool))
wrapper = os.path.join(work, "python-without-cryptography")
with open(wrapper, "w") as fh:
    fh.write('#!/bin/sh\nPATH=%s exec %s -S "$@"\n' % (nossl, python))
os.chmod(wrapper, 0o755)
group[fallback]["ansible_python_interpreter"] = wrapper
dump(os.path.join(inv, "hosts.yml"), hosts)

# A drop folder nobody serves: the probe's return never comes.
hv_path = os.path.join(inv, "host_vars", timeout + ".yml")
hv = load(hv_path)
hv.update(sne_guichet_async_transport="folder", async_check_timeout=2,
          sne_guichet_async_folder={"outbox": os.path.join(work, "nobody/outbox"),
                                    "inbox": os.path.join(work, "nobody/inbox")})
os.makedirs(os.path.join(work, "nobody/outbox"))
os.makedirs(os.path.join(work, "nobody/inbox"))
dump(hv_path, hv)

# An undeclared keystore holding V4, under a search path of the host (not one check_fleet
# greps: it stays there on purpose).
root = fleet[attention]["root"]
os.makedirs(os.path.join(root, "srv/legacy"))
shutil.copyfile(os.path.join(work, "fleet/templates/app-v4.jks"), os.path.join(root, "srv/legacy/old-trust.jks"))
hv_path = os.path.join(inv, "host_vars", attention + ".yml")
hv = load(hv_path)
hv["sne_guichet_search_paths"].append(os.path.join(root, "srv"))
dump(hv_path, hv)

# The place of the stray in the quarantine of run ff-1 is taken by an earlier copy, in folders
# made as the retire role makes them (mode 0700).
host = fleet[collision]
taken = host["quarantine_dir"] + "/ff-1" + host["strays"][0]
missing, folder = [], os.path.dirname(taken)
while not os.path.isdir(folder):
    missing.append(folder)
    folder = os.path.dirname(folder)
for folder in reversed(missing):
    os.mkdir(folder)
    os.chmod(folder, 0o700)
with open(taken, "w") as fh:
    fh.write("an earlier quarantined copy: never to be written over\n")
PYPLANT
ATT_JKS="$(root_of "$ATTENTION")/srv/legacy/old-trust.jks"
STRAY="$(root_of "$COLLISION")/opt/guichet/conf/Chiffrement_SNEV4.cer"
TAKEN="$(root_of "$COLLISION")/var/lib/sne-guichet/quarantine/ff-1$STRAY"
ATT_SHA="$(sha "$ATT_JKS")" STRAY_SHA="$(sha "$STRAY")" TAKEN_SHA="$(sha "$TAKEN")"

export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_FORKS=10
play() { ansible-playbook -i "$INV" -e report_dir="$REPORTS" "$@"; }
check() { "$PY" "$COLL/tests/fleet/check_fleet.py" "$WORK/fleet" "$@"; }
hostopts() { local h; for h in "$@"; do printf -- '--host\n%s\n' "$h"; done; }
# report FILE PYTHON: run assertions with `r` the parsed report, `hosts` its records by name,
# `roles` the hosts' roles, `closed` the closed port.
report() {
  "$PY" - "$1" "$CLOSED_PORT" "$BROKEN" "$UNCONF" "$IMMUTABLE" "$DIRSTORE" "$TIMEOUT" "$FALLBACK" \
    "$ATTENTION" "$COLLISION" "${UNREACH[@]}" "$ATT_JKS" "$STRAY" "$HOSTS" <<PYCHECK
import json, sys
r = json.load(open(sys.argv[1]))
closed = int(sys.argv[2])
names = ("broken", "unconf", "immutable", "dirstore", "timeout", "fallback", "attention", "collision")
roles = dict(zip(names, sys.argv[3:11]))
unreach, att_jks, stray = sys.argv[11:13], sys.argv[13], sys.argv[14]
hosts = {h["host"]: h for h in r["hosts"]}
assert len(hosts) == int(sys.argv[15]) == sum(r["totals"].values()), (sorted(hosts), r["totals"])
$2
PYCHECK
}
# junit FILE HOST...: one test case per host; <failure type="STATUS"> exactly for these hosts.
junit() {
  "$PY" - "$@" "$HOSTS" <<'PYJUNIT'
import json, sys
from junitparser import Failure, JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
report = json.load(open(sys.argv[1].replace("junit.xml", "report.json")))
status = {h["host"]: h["status"] for h in report["hosts"]}
cases = [c for suite in (xml if hasattr(xml, "__iter__") else [xml]) for c in suite]
assert len(cases) == int(sys.argv[-1]) == len({c.name for c in cases}), [c.name for c in cases]
failed = {c.name: [x for x in c.result if isinstance(x, Failure)] for c in cases}
failed = {name: f[0] for name, f in failed.items() if f}
assert sorted(failed) == sorted(sys.argv[2:-1]), sorted(failed)
assert all(f.type == status[name] for name, f in failed.items()), {n: f.type for n, f in failed.items()}
print("junit.xml: %d cases, failures %s" % (len(cases), ", ".join("%s (%s)" % (n, status[n]) for n in sorted(failed))))
PYJUNIT
}

check --snapshot "$WORK/baseline.json" >/dev/null

step "1. rotate --check on the hosts of the mid-run faults and the unreachable ones: no byte changes"
# Before their stores are made unusable, the mid-run hosts plan fine: their first run would
# change them. (Limited to these hosts: a whole-fleet check run is rotate_fleet's.)
CHECKED=("$IMMUTABLE" "$DIRSTORE" "${UNREACH[@]}")
expect_rc 2 "$WORK/check.log" -- play sne.guichet.rotate --check -e sne_run_id=ff-check --limit "$(IFS=,; echo "${CHECKED[*]}")"
recaps "$WORK/check.log" "failed=1" "${UNREACH[@]}"
recaps "$WORK/check.log" "changed=[1-9].*failed=0" "$IMMUTABLE" "$DIRSTORE"
check --expect untouched --baseline "$WORK/baseline.json" >/dev/null || fail "the check run changed a byte"
report "$REPORTS/V5/runs/ff-check/report.json" '
assert r["check_mode"] is True
for name in unreach:
    assert hosts[name]["status"] == "not reached" and "port %d" % closed in hosts[name]["reason"], hosts[name]
for role in ("immutable", "dirstore"):
    assert hosts[roles[role]]["status"] == "changed", hosts[roles[role]]   # would change
assert sum(h["in_this_run"] for h in hosts.values()) == 4, [h for h in hosts.values() if h["in_this_run"]]'

step "2. two stores made unusable (root cannot bypass it), then rotate"
IMM_PATH="$(root_of "$IMMUTABLE")/opt/guichet/conf/sne.pem"
IMM_SHA="$(sha "$IMM_PATH")"
cp -a "$IMM_PATH" "$WORK/saved-sne.pem"
if chattr +i "$IMM_PATH" 2>/dev/null; then
  IMM_STORE="$IMM_PATH"
  if ( : >> "$IMM_PATH" ) 2>/dev/null; then fail "chattr +i did not stop root from writing $IMM_PATH"; fi
  MIDRUN=immutable
else  # no immutable bit on this file system: a store of garbage, which every reader refuses
  head -c 3000 /dev/urandom > "$IMM_PATH"
  IMM_SHA="$(sha "$IMM_PATH")"
  MIDRUN=garbage
fi
echo "mid-run fault on $IMMUTABLE: $MIDRUN sne.pem"
P12="$(root_of "$DIRSTORE")/opt/guichet/conf/trust.p12"
mv "$P12" "$WORK/saved-trust.p12"
mkdir "$P12"
check --snapshot "$WORK/planted.json" >/dev/null
expect_rc 2 "$WORK/run1.log" -- play sne.guichet.rotate -e sne_run_id=ff-1
FAILED1=("$BROKEN" "${UNREACH[@]}" "$IMMUTABLE" "$DIRSTORE" "$TIMEOUT" "$COLLISION" "$UNCONF")
failed_exactly "$WORK/run1.log" "${FAILED1[@]}"
# ignore_unreachable keeps an unreachable host in the play, to report it: Ansible counts its
# unreachable task as ignored, and the playbook fails it.
recaps "$WORK/run1.log" "ignored=1" "${UNREACH[@]}"
mapfile -t REACHED < <(but "${ALL[@]}" -- "${UNREACH[@]}")
recaps "$WORK/run1.log" "unreachable=0.*ignored=0" "${REACHED[@]}"
# The controller-side probe (its send, then its wait) ran for the host that cannot encrypt,
# and for it alone: the send is delegated for it only, and of the wait (one task for every
# host) only its line says "-> localhost".
task="Send it from the controller when the host cannot encrypt"
sed -n "/^TASK \[sne.guichet.async_check : $task/,/^TASK/p" "$WORK/run1.log" \
  | grep -E '^(ok|changed|failed|fatal):' > "$WORK/delegated.txt" || true
[ "$(cat "$WORK/delegated.txt")" = "ok: [$FALLBACK -> localhost]" ] || fail "controller probe ($task): $(cat "$WORK/delegated.txt")"
task="Wait for the SNE's return of the message (on the controller when it sent it)"
sed -n "/^TASK \[sne.guichet.async_check : $task/,/^TASK/p" "$WORK/run1.log" \
  | grep -E '^(ok|changed|failed|fatal):.*-> localhost' > "$WORK/delegated.txt" || true
[ "$(cat "$WORK/delegated.txt")" = "ok: [$FALLBACK -> localhost]" ] || fail "controller probe ($task): $(cat "$WORK/delegated.txt")"
# The others converge; the hosts the rotation must not touch are byte-identical.
mapfile -t CONVERGED < <(but "${ALL[@]}" -- "${FAILED1[@]}"; echo "$TIMEOUT")
mapfile -t OPTS < <(hostopts "${CONVERGED[@]}" "$BROKEN" "$UNCONF")
check --expect rotated --baseline "$WORK/baseline.json" "${OPTS[@]}"
mapfile -t OPTS < <(hostopts "${UNREACH[@]}")
check --expect untouched --baseline "$WORK/baseline.json" "${OPTS[@]}" >/dev/null || fail "an unreachable host changed"
check --expect untouched --baseline "$WORK/planted.json" --host "$DIRSTORE" >/dev/null \
  || fail "$DIRSTORE: a store was written although trust.p12 could not be read"
[ "$(sha "$IMM_PATH")" = "$IMM_SHA" ] || fail "$IMMUTABLE: the failed sne.pem changed"
[ -z "$(find "$(root_of "$IMMUTABLE")" -name '*.sne-tmp')" ] || fail "$IMMUTABLE: temporary files left"
[ "$(sha "$ATT_JKS")" = "$ATT_SHA" ] || fail "$ATTENTION: the undeclared keystore was touched"
[ "$(sha "$STRAY")" = "$STRAY_SHA" ] || fail "$COLLISION: the stray is not where it was"
[ "$(sha "$TAKEN")" = "$TAKEN_SHA" ] || fail "$COLLISION: the earlier quarantined copy was written over"
MIDRUN="$MIDRUN" report "$REPORTS/V5/report.json" '
import os
midrun = os.environ["MIDRUN"]
assert r["check_mode"] is False and r["run_id"] == "ff-1"
for name, h in hosts.items():
    assert h["in_this_run"] and h["run_id"] == "ff-1", h
for name in unreach:
    h = hosts[name]
    assert h["status"] == "not reached" and h["reason"].startswith("unreachable: "), h
    assert "port %d" % closed in h["reason"] and "Connection refused" in h["reason"], h
h = hosts[roles["immutable"]]
pem = [s for s in h["stores"] if s["path"].endswith("/sne.pem")][0]
assert h["status"] == "failed" and h["reason"].startswith(pem["path"] + " (pem): "), h
if midrun == "immutable":   # read and planned fine; the rename over it refused: the others written
    assert "cannot replace " + pem["path"] in h["reason"], h
    assert all(s["changed"] and s["after"] == ["V5"] for s in h["stores"] if s is not pem), h["stores"]
assert pem["failed"] and not pem["changed"] and pem["after"] == ["V4"], pem
h = hosts[roles["dirstore"]]
p12 = [s for s in h["stores"] if s["path"].endswith("/trust.p12")][0]
assert h["status"] == "failed" and h["reason"].startswith(p12["path"] + " (pkcs12): "), h
assert p12["path"] + " is a folder, not a file" in h["reason"], h
assert not any(s["changed"] for s in h["stores"]), h["stores"]
h = hosts[roles["timeout"]]
assert h["status"] == "failed" and h["probe"]["status"] == "timeout", h
assert h["reason"].startswith("asynchronous check timeout: no return for message SNEPROBE-%s-" % h["host"]), h
assert all(s["after"] == ["V5"] for s in h["stores"]), h["stores"]
h = hosts[roles["fallback"]]
assert h["status"] == "changed" and h["probe"]["status"] == "passed", h
assert "accepted by the SNE" in h["probe"]["msg"], h
h = hosts[roles["attention"]]
assert h["status"] == "attention" and h["needs_attention"] == [att_jks], h
assert h["reason"] == "retired certificate still in %s (not touched: needs a person)" % att_jks, h
h = hosts[roles["collision"]]
assert h["status"] == "failed" and h["needs_attention"] == [stray] and stray not in h["quarantined"], h
assert h["reason"].startswith("stray copy %s not quarantined: its place in the quarantine of run ff-1 is taken" % stray), h
assert hosts[roles["broken"]]["status"] == "failed" and "password" in hosts[roles["broken"]]["reason"]
assert hosts[roles["unconf"]]["status"] == "unconfigured"
special = set(roles.values()) | set(unreach)
for name in set(hosts) - special:
    assert hosts[name]["status"] in ("changed", "ok") and hosts[name]["probe"]["status"] == "passed", hosts[name]
t = r["totals"]
assert (t["failed"], t["not reached"], t["unconfigured"], t["attention"], t["changed"] + t["ok"]) == (5, 2, 1, 1, 11), t
for name in sorted(hosts):
    if hosts[name]["status"] not in ("ok", "changed"):
        print("  %s %s: %s" % (name, hosts[name]["status"], hosts[name]["reason"][:150]))'
junit "$REPORTS/V5/junit.xml" "${FAILED1[@]}" "$ATTENTION"
check --snapshot "$WORK/after-run1.json" >/dev/null

step "3. repair, then rotate again without --limit"
"$PY" - "$WORK" "$SSH_PORT" "$BROKEN" "$TIMEOUT" "${UNREACH[@]}" <<'PYREPAIR'
import json, os, sys, yaml
work, port, broken, timeout, unreach = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
inv = os.path.join(work, "fleet/inventory")
fleet = json.load(open(os.path.join(work, "fleet/fleet.json")))["hosts"]

def edit(path, change):
    with open(path) as fh:
        data = yaml.safe_load(fh)
    change(data)
    with open(path, "w") as fh:
        fh.write("---\n" + yaml.safe_dump(data, sort_keys=False))

def ports(data):  # the right SSH port
    for name in unreach:
        data["all"]["children"]["guichets"]["hosts"][name]["ansible_port"] = port

def answered(data):  # back to the transport the SNE answers on
    for key in ("sne_guichet_async_transport", "sne_guichet_async_folder", "async_check_timeout"):
        del data[key]

def password(data):  # the broken host's real store passwords
    real = {s["path"]: s.get("password") for s in fleet[broken]["stores"]}
    for store in data["sne_guichet_stores"]:
        if store.get("password"):
            store["password"] = real[store["path"]]

edit(os.path.join(inv, "hosts.yml"), ports)
edit(os.path.join(inv, "host_vars", timeout + ".yml"), answered)
edit(os.path.join(inv, "host_vars", broken + ".yml"), password)
PYREPAIR
if [ "$MIDRUN" = immutable ]; then chattr -i "$IMM_PATH"; IMM_STORE=""; fi
cp -a "$WORK/saved-sne.pem" "$IMM_PATH"
rmdir "$P12"
mv "$WORK/saved-trust.p12" "$P12"
# The collision needs no repair: the next run has its own quarantine folder, as the reason says.
expect_rc 2 "$WORK/run2.log" -- play sne.guichet.rotate -e sne_run_id=ff-2
REPAIRED=("$BROKEN" "${UNREACH[@]}" "$IMMUTABLE" "$DIRSTORE" "$COLLISION")
mapfile -t DONE < <(but "${ALL[@]}" -- "${REPAIRED[@]}" "$UNCONF")
failed_exactly "$WORK/run2.log" "$UNCONF"
recaps "$WORK/run2.log" "changed=[1-9]" "${REPAIRED[@]}"
recaps "$WORK/run2.log" "changed=0 " "${DONE[@]}" "$UNCONF"
mapfile -t OPTS < <(hostopts "${DONE[@]}" "$UNCONF")
check --expect untouched --baseline "$WORK/after-run1.json" "${OPTS[@]}" || fail "a host already done changed"
mapfile -t OPTS < <(hostopts "${REPAIRED[@]}")
check --expect rotated --baseline "$WORK/baseline.json" --repaired "$BROKEN" "${OPTS[@]}"
[ "$(sha "$TAKEN")" = "$TAKEN_SHA" ] || fail "$COLLISION: the earlier quarantined copy was written over"
report "$REPORTS/V5/report.json" '
assert r["run_id"] == "ff-2"
for name in [roles[k] for k in ("broken", "immutable", "dirstore", "collision")] + unreach:
    assert hosts[name]["status"] == "changed" and hosts[name]["probe"]["status"] == "passed", hosts[name]
assert hosts[roles["timeout"]]["status"] == "ok" and hosts[roles["timeout"]]["probe"]["status"] == "passed"
assert hosts[roles["collision"]]["quarantined"] == [stray], hosts[roles["collision"]]
assert hosts[roles["attention"]]["status"] == "attention"   # running again does not clear it
assert hosts[roles["unconf"]]["status"] == "unconfigured"
t = r["totals"]
assert (t["failed"], t["not reached"], t["changed"], t["ok"]) == (0, 0, 6, 12), t'
junit "$REPORTS/V5/junit.xml" "$ATTENTION" "$UNCONF"
echo "fleet faults: all checks passed (${SECONDS}s)"
