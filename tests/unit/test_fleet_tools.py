"""Quick tests of the fleet harness: tests/fleet/make_fleet.py and tests/fleet/check_fleet.py."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any, Dict, Tuple

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLEET_DIR = os.path.join(ROOT, "tests", "fleet")
CHECK_FLEET = os.path.join(FLEET_DIR, "check_fleet.py")
sys.path.insert(0, FLEET_DIR)

import make_fleet  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("keytool") is None or shutil.which("openssl") is None,
                                reason="keytool and openssl are needed to build the fleet")

HOST_VARS = {"sne_guichet_stores", "sne_guichet_search_paths", "sne_guichet_config_files",
             "sne_guichet_backup_dir", "sne_guichet_quarantine_dir", "sne_guichet_reload_commands",
             "sne_guichet_root"}
UNCONFIGURED_HOST_VARS = HOST_VARS - {"sne_guichet_stores", "sne_guichet_config_files"}
ROTATION_VARS = {"sne_generation", "sne_bundle_src", "sne_certificate_sha256", "sne_authority_sha256",
                 "sne_retired_sha256", "sne_valid_at", "sne_retired_certificates",
                 "sne_bundle_crls", "sne_retired_generation", "sne_require_retired_revoked"}


@pytest.fixture(scope="module")
def fleet3(pki, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fleet3"))
    key = os.path.join(out, "id_test")
    data = make_fleet.build(out, 3, pki["dir"], ssh_hosts=1, ssh_port=2222, ssh_key=key,
                            python="/usr/bin/python3")
    return out, data


@pytest.fixture(scope="module")
def fleet5(pki, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fleet5"))
    make_fleet.build(out, 5, pki["dir"])
    return out


@pytest.fixture(scope="module")
def fleet6u(pki, tmp_path_factory):
    """6 hosts, the last one unconfigured: v4, stray, odd_alias, broken, v5, unconfigured."""
    out = str(tmp_path_factory.mktemp("fleet6u"))
    data = make_fleet.build(out, 6, pki["dir"], unconfigured=1)
    return out, data


def _load_yaml(path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def check(outdir, *args):
    proc = subprocess.run([sys.executable, CHECK_FLEET, outdir] + list(args), capture_output=True,
                          text=True, check=False, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_kinds_are_deterministic_and_mixed():
    kinds = [make_fleet.kind_of(i) for i in range(200)]
    assert kinds == [make_fleet.kind_of(i) for i in range(200)]
    assert kinds[:5] == ["v4", "stray", "odd_alias", "broken", "v5"]
    counts = collections.Counter(kinds)
    assert counts["odd_alias"] == counts["stray"] == counts["broken"] == 1
    assert counts["v5"] == 40 and counts["v4"] == 157
    assert sum(make_fleet.has_p12(i) for i in range(200)) == 100
    # --unconfigured N forces the kind of the last N hosts only.
    assert [make_fleet.fleet_kind(i, 200) for i in range(200)] == kinds
    assert [make_fleet.fleet_kind(i, 7, 2) for i in range(7)] == kinds[:5] + ["unconfigured"] * 2
    assert "unconfigured" in make_fleet.KINDS
    with pytest.raises(ValueError):
        make_fleet.build("/nonexistent", 2, "/nonexistent", unconfigured=3)


def test_fleet_structure(fleet3, pki):
    out, data = fleet3
    assert [h["kind"] for _n, h in sorted(data["hosts"].items())] == ["v4", "stray", "odd_alias"]
    with open(os.path.join(out, "fleet.json"), encoding="utf-8") as fh:
        assert json.load(fh)["hosts"].keys() == data["hosts"].keys()
    for name, host in data["hosts"].items():
        root = host["root"]
        assert root == os.path.join(out, "roots", name)
        for rel in ("opt/guichet/conf/app.jks", "opt/guichet/conf/sne.pem",
                    "opt/guichet/conf/Chiffrement_SNEV4.cer", "opt/guichet/conf/guichet.properties",
                    "usr/sbin/update-ca-certificates", "var/log", "var/backups"):
            assert os.path.exists(os.path.join(root, rel)), rel
        assert os.path.exists(os.path.join(root, "opt/guichet/conf/trust.p12")) == host["has_p12"]
        # The declared DER store is the V5 file the rotation creates; the V4 one is a stray.
        der_store = [s for s in host["stores"] if s["type"] == "der"][0]
        assert der_store["path"].endswith("Chiffrement_SNEV5.cer") and der_store["create"]
        assert os.path.join(root, "opt/guichet/conf/Chiffrement_SNEV4.cer") in host["strays"]
        links = [f for f in os.listdir(os.path.join(root, "etc/guichet/certs")) if f.endswith(".0")]
        assert len(links) == 3 and all(os.path.islink(os.path.join(root, "etc/guichet/certs", f))
                                       for f in links)
        assert os.access(os.path.join(root, "usr/sbin/update-ca-certificates"), os.X_OK)
        for store in host["stores"]:
            assert os.path.exists(store["path"]) or store.get("create")
    stray = data["hosts"]["guichet-002"]
    assert len(stray["strays"]) == 3  # the V4 DER file, and two copies nobody remembers
    for path in stray["strays"]:
        with open(path, "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == stray["stray_sha256"][path]
    with open(data["hosts"]["guichet-001"]["config_files"][0], encoding="utf-8") as fh:
        text = fh.read()
    assert "Chiffrement_SNEV4.cer" in text and "sne.chiffrement.alias=sne-chiffrement-v4" in text


def test_inventory(fleet3, pki):
    out, data = fleet3
    inv = _load_yaml(os.path.join(out, "inventory", "hosts.yml"))
    hosts = inv["all"]["children"]["guichets"]["hosts"]
    assert sorted(hosts) == ["guichet-001", "guichet-002", "guichet-003"]
    assert hosts["guichet-001"]["ansible_host"] == "127.0.0.1"
    assert hosts["guichet-001"]["ansible_port"] == 2222
    assert hosts["guichet-001"]["ansible_user"] == "root"
    assert hosts["guichet-001"]["ansible_ssh_private_key_file"] == os.path.join(out, "id_test")
    assert "StrictHostKeyChecking=no" in hosts["guichet-001"]["ansible_ssh_common_args"]
    assert hosts["guichet-002"] == {"ansible_connection": "local",
                                    "ansible_python_interpreter": "/usr/bin/python3"}
    assert data["hosts"]["guichet-001"]["ssh"] and not data["hosts"]["guichet-002"]["ssh"]

    for name, host in data["hosts"].items():
        hv = _load_yaml(os.path.join(out, "inventory", "host_vars", name + ".yml"))
        assert set(hv) == HOST_VARS
        root = host["root"]
        assert hv["sne_guichet_root"] == root
        assert hv["sne_guichet_search_paths"] == [root + "/opt", root + "/home", root + "/etc/guichet"]
        types = {s["type"]: s for s in hv["sne_guichet_stores"]}
        assert types["jks"]["password"] == "changeit"
        assert types["debian"]["refresh"] == root + "/usr/sbin/update-ca-certificates"
        assert {"jks", "pem", "der", "pem_dir", "debian"} <= set(types)
        # Nothing names a generation: the next rotation (V5 -> V6) needs new values only.
        assert types["der"] == {"path": root + "/opt/guichet/conf/Chiffrement_SNE{{ sne_generation }}.cer",
                                "type": "der", "create": True}
        assert [c["replace"] for c in hv["sne_guichet_config_files"]] == [
            "Chiffrement_SNE{{ sne_generation }}.cer", "sne-chiffrement-{{ sne_generation | lower }}"]
        assert [c["regexp"] for c in hv["sne_guichet_config_files"]] == [
            r"Chiffrement_SNEV[0-9]+\.cer", r"sne-chiffrement-v[0-9]+"]
        assert hv["sne_guichet_reload_commands"][0][:2] == ["sh", "-c"]
        assert hv["sne_guichet_quarantine_dir"] == root + "/var/lib/sne-guichet/quarantine"
        assert hv["sne_guichet_backup_dir"] == root + "/var/backups/sne-guichet"

    rotation = _load_yaml(os.path.join(out, "inventory", "group_vars", "all", "sne_rotation.yml"))
    assert set(rotation) == ROTATION_VARS
    certs = pki["certificates"]
    assert rotation["sne_generation"] == "V5"
    assert rotation["sne_valid_at"] == "2026-06-01T00:00:00Z"  # a string, not a YAML timestamp
    assert rotation["sne_certificate_sha256"] == certs["chiffrement-v5"]["sha256"]
    assert rotation["sne_authority_sha256"] == [certs["ac-v5"]["sha256"]]
    assert rotation["sne_retired_sha256"] == [certs["chiffrement-v4"]["sha256"], certs["ac-v4"]["sha256"]]
    with open(os.path.join(pki["dir"], certs["chiffrement-v4"]["path"])) as fh:
        assert rotation["sne_retired_certificates"][0] == fh.read()  # V4: its queued messages
    with open(os.path.join(pki["dir"], certs["ac-v4"]["path"])) as fh:
        assert rotation["sne_retired_certificates"][1:] == [fh.read()]  # its authority: verifies its CRL
    crls = pki["crls"]
    assert rotation["sne_bundle_crls"] == [os.path.join(pki["dir"], crls[n][f]) for n, f in
                                           (("ac-v5", "der"), ("ac-v4", "pem"))]
    assert rotation["sne_retired_generation"] == "V4" and rotation["sne_require_retired_revoked"] is True
    assert os.path.isfile(rotation["sne_bundle_src"])


def _rewrite(text: str, config_files: Any, generation: str) -> str:
    """What ansible.builtin.replace does with the host's rewrites, templated for ``generation``."""
    for item in config_files:
        replace = item["replace"].replace("{{ sne_generation | lower }}", generation.lower())
        text = re.sub(item["regexp"], replace.replace("{{ sne_generation }}", generation), text)
    return text


def test_config_rewrites_match_any_generation(fleet3):
    out, data = fleet3
    host = data["hosts"]["guichet-001"]
    hv = _load_yaml(os.path.join(out, "inventory", "host_vars", "guichet-001.yml"))
    with open(host["config_files"][0], encoding="utf-8") as fh:
        v4 = fh.read()
    v5 = _rewrite(v4, hv["sne_guichet_config_files"], "V5")
    assert "Chiffrement_SNEV5.cer" in v5 and "sne-chiffrement-v5" in v5 and "V4" not in v5
    assert _rewrite(v5, hv["sne_guichet_config_files"], "V5") == v5  # second run: no change
    v6 = _rewrite(v5, hv["sne_guichet_config_files"], "V6")
    assert v6 == v4.replace("SNEV4", "SNEV6").replace("chiffrement-v4", "chiffrement-v6")


def test_unconfigured_host(fleet6u):
    out, data = fleet6u
    assert [h["kind"] for _n, h in sorted(data["hosts"].items())] == [
        "v4", "stray", "odd_alias", "broken", "v5", "unconfigured"]
    host, v4 = data["hosts"]["guichet-006"], data["hosts"]["guichet-001"]
    root = host["root"]

    def rel(h: Dict[str, Any], path: str) -> str:
        return os.path.relpath(path, h["root"])

    # On disk and in fleet.json, a v4 host (with the real passwords), but for the search paths.
    assert [(rel(host, s["path"]), s["type"], s.get("password")) for s in host["stores"]] == \
        [(rel(v4, s["path"]), s["type"], s.get("password")) for s in v4["stores"]
         if s["type"] != "pkcs12"]  # guichet-006 has an odd index: no PKCS#12 truststore
    assert [rel(host, p) for p in host["strays"]] == ["opt/guichet/conf/Chiffrement_SNEV4.cer"]
    assert [rel(host, p) for p in host["config_files"]] == [rel(v4, p) for p in v4["config_files"]]
    assert [rel(host, p) for p in host["search_paths"]] == ["opt", "home", "etc/guichet", "usr/local"]
    for name in ("opt/guichet/conf/app.jks", "opt/guichet/conf/sne.pem",
                 "opt/guichet/conf/Chiffrement_SNEV4.cer", "opt/guichet/conf/guichet.properties",
                 "usr/local/share/ca-certificates/sne-ac-v4.crt"):
        with open(os.path.join(root, name), "rb") as a, open(os.path.join(v4["root"], name), "rb") as b:
            data_a, data_b = a.read(), b.read()
        assert data_a.replace(b"guichet-006", b"guichet-001") == data_b, name
    assert os.access(os.path.join(root, "usr/sbin/update-ca-certificates"), os.X_OK)
    assert len([f for f in os.listdir(os.path.join(root, "etc/guichet/certs")) if f.endswith(".0")]) == 3
    # The inventory declares no store and no configuration file.
    hv = _load_yaml(os.path.join(out, "inventory", "host_vars", "guichet-006.yml"))
    assert set(hv) == UNCONFIGURED_HOST_VARS
    assert hv["sne_guichet_search_paths"] == host["search_paths"]
    assert hv["sne_guichet_root"] == root


def test_check_fleet_unconfigured_and_repaired(fleet6u, tmp_path):
    out, _data = fleet6u
    baseline = str(tmp_path / "baseline.json")
    assert check(out, "--snapshot", baseline)[0] == 0
    # Not rotated: the broken and the unconfigured hosts must be exactly like that.
    hosts = ["--host", "guichet-004", "--host", "guichet-006"]
    rc, text = check(out, "--expect", "rotated", "--baseline", baseline, *hosts)
    assert rc == 0, text
    # Repaired / configured: now they must be rotated like a v4 host, which they are not.
    rc, text = check(out, "--expect", "rotated", "--baseline", baseline, *hosts,
                     "--repaired", "guichet-004", "--configured", "guichet-006", "-v")
    assert rc == 1, text
    for name in ("guichet-004", "guichet-006"):
        line = [t for t in text.splitlines() if t.startswith(name)][0]
        assert "FAIL" in line and "app.jks: v5 missing" in line, text
    assert "stray opt/guichet/conf/Chiffrement_SNEV4.cer not moved" in text  # of the repaired host too
    # Anything touching an unconfigured host is a mismatch.
    planted = os.path.join(out, "roots", "guichet-006", "var", "log", "x.log")
    with open(planted, "w", encoding="utf-8") as fh:
        fh.write("x\n")
    try:
        rc, text = check(out, "--expect", "rotated", "--baseline", baseline, "--host", "guichet-006")
        assert rc == 1 and "unconfigured host changed: added var/log/x.log" in text, text
    finally:
        os.remove(planted)
    # Options naming the wrong hosts, or a generation the PKI has not, are refused.
    for args in (["--repaired", "guichet-001"], ["--configured", "guichet-004"], ["--generation", "V4"],
                 ["--generation", "V9"], ["--generation", "six"]):
        rc, text = check(out, "--expect", "rotated", *args)
        assert rc == 2, (args, text)


# --------------------------------------------------------------------------- V5 -> V6


def _rotate_by_hand_to_v6(fleet: Dict[str, Any], name: str, pki: Dict[str, Any]) -> None:
    """Lay out what V4 -> V5 (run r1) then V5 -> V6 (run r2) leave on a v4-like host without a
    PKCS#12 store, by other means than the collection (keytool, files, openssl rehash)."""
    host = fleet["hosts"][name]
    root = host["root"]
    certs = pki["certificates"]

    def cert(ident: str, form: str) -> bytes:
        with open(os.path.join(pki["dir"], certs[ident]["der" if form == "der" else "path"]), "rb") as fh:
            return fh.read()

    def quarantine(run: str, path: str, data: bytes = b"") -> None:
        dest = host["quarantine_dir"] + "/" + run + path
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if data:
            with open(dest, "wb") as fh:
                fh.write(data)
        else:
            shutil.move(path, dest)

    jks = [s for s in host["stores"] if s["type"] == "jks"][0]
    store = ["-keystore", jks["path"], "-storepass", jks["password"]]
    for alias in ("sne-chiffrement-v4", "sne-ac-v4"):
        make_fleet.keytool("-delete", *store, "-alias", alias)
    make_fleet.keytool("-importcert", "-noprompt", *store, "-alias", "sne-chiffrement-v6",
                       "-file", os.path.join(pki["dir"], "chiffrement-v6.pem"))
    conf = os.path.join(root, "opt/guichet/conf")
    with open(os.path.join(conf, "sne.pem"), "wb") as fh:
        fh.write(b"# SNE encryption certificate, its authority, and our partner's authority\n"
                 + cert("chiffrement-v6", "pem") + cert("ac-v6", "pem"))
    with open(os.path.join(conf, "Chiffrement_SNEV6.cer"), "wb") as fh:
        fh.write(cert("chiffrement-v6", "der"))
    for path in host["strays"]:
        quarantine("r1", path)
    quarantine("r2", os.path.join(conf, "Chiffrement_SNEV5.cer"), cert("chiffrement-v5", "der"))
    folder = os.path.join(root, "etc/guichet/certs")
    for entry in os.listdir(folder):
        if entry.endswith(".0") or "-v4" in entry:
            os.remove(os.path.join(folder, entry))
    with open(os.path.join(folder, "sne-chiffrement-v6.pem"), "wb") as fh:
        fh.write(cert("chiffrement-v6", "pem"))
    subprocess.run(["openssl", "rehash", folder], check=True, capture_output=True)
    os.remove(os.path.join(root, "usr/local/share/ca-certificates/sne-ac-v4.crt"))
    properties = host["config_files"][0]
    with open(properties, encoding="utf-8") as fh:
        text = fh.read()
    with open(properties, "w", encoding="utf-8") as fh:
        fh.write(text.replace("Chiffrement_SNEV4.cer", "Chiffrement_SNEV6.cer")
                 .replace("sne-chiffrement-v4", "sne-chiffrement-v6"))
    for log, line in ((host["reload_log"], "reloaded\n" * 2), (host["refresh_log"], "refresh\n" * 2)):
        with open(log, "w", encoding="utf-8") as fh:
            fh.write(line)


def _planted(path: str, data: bytes, append: bool = False) -> Tuple[str, bytes]:
    """Write (or append) ``data`` to ``path``; return what to restore (path, previous bytes)."""
    previous = b""
    if os.path.exists(path):
        with open(path, "rb") as fh:
            previous = fh.read()
    with open(path, "wb") as fh:
        fh.write(previous + data if append else data)
    return path, previous


def test_check_fleet_generation_v6(fleet6u, pki, tmp_path):
    out, data = fleet6u
    name, host = "guichet-002", data["hosts"]["guichet-002"]  # stray: three V4 copies, no PKCS#12
    conf = os.path.join(host["root"], "opt/guichet/conf")
    before_v5 = str(tmp_path / "before.json")
    assert check(out, "--snapshot", before_v5)[0] == 0
    _rotate_by_hand_to_v6(data, name, pki)

    rc, text = check(out, "--expect", "rotated", "--generation", "V6", "--host", name)
    assert rc == 0, text
    assert "(expect rotated to V6): 1 ok" in text
    # Rotated to V6 is not rotated to V5 (V5 missing everywhere), and a snapshot taken before
    # the V5 rotation is no baseline for V6.
    rc, text = check(out, "--expect", "rotated", "--host", name)
    assert rc == 1 and "app.jks: v5 missing" in text, text
    rc, text = check(out, "--expect", "rotated", "--generation", "V6", "--host", name,
                     "--baseline", before_v5)
    assert rc == 1 and "not a snapshot taken after the V5 rotation" in text, text

    # Planted faults: the V5 DER back in the conf folder; V5 back in the PEM bundle and the
    # configuration still naming V5.
    with open(os.path.join(pki["dir"], "chiffrement-v5.der"), "rb") as fh:
        restore = [_planted(os.path.join(conf, "Chiffrement_SNEV5.cer"), fh.read())]
    try:
        rc, text = check(out, "--expect", "rotated", "--generation", "V6", "--host", name, "-v")
        assert rc == 1, text
        assert "V5/V4 left in opt/guichet/conf/Chiffrement_SNEV5.cer (v5 der)" in text
        assert "stray opt/guichet/conf/Chiffrement_SNEV5.cer not moved" in text
    finally:
        os.remove(restore.pop()[0])
    with open(os.path.join(pki["dir"], "chiffrement-v5.pem"), "rb") as fh:
        restore.append(_planted(os.path.join(conf, "sne.pem"), fh.read(), append=True))
    with open(host["config_files"][0], "rb") as fh:
        restore.append(_planted(host["config_files"][0], fh.read().replace(b"-v6", b"-v5")))
    try:
        rc, text = check(out, "--expect", "rotated", "--generation", "V6", "--host", name, "-v")
        assert rc == 1, text
        assert "opt/guichet/conf/sne.pem: v5 still there" in text
        assert "V5/V4 left in opt/guichet/conf/sne.pem (v5 base64)" in text
        assert "guichet.properties: still sne-chiffrement-v5" in text
        assert "guichet.properties: no sne-chiffrement-v6" in text
    finally:
        for path, previous in restore:
            with open(path, "wb") as fh:
                fh.write(previous)
    rc, text = check(out, "--expect", "rotated", "--generation", "V6", "--host", name)
    assert rc == 0, text


def test_broken_host_has_wrong_inventory_password(fleet5):
    hv = _load_yaml(os.path.join(fleet5, "inventory", "host_vars", "guichet-004.yml"))
    jks = [s for s in hv["sne_guichet_stores"] if s["type"] == "jks"][0]
    assert jks["password"] != "changeit"


def test_second_build_gives_the_same_fleet(fleet3, pki, tmp_path):
    _out, first = fleet3
    second = make_fleet.build(str(tmp_path), 3, pki["dir"], ssh_hosts=1, ssh_port=2222,
                              ssh_key="/k", python="/usr/bin/python3")
    assert {n: h["kind"] for n, h in second["hosts"].items()} == \
        {n: h["kind"] for n, h in first["hosts"].items()}
    assert [len(h["stores"]) for h in second["hosts"].values()] == \
        [len(h["stores"]) for h in first["hosts"].values()]


def test_check_fleet_detects_a_planted_v4_file(fleet5, pki, tmp_path):
    # guichet-005 is already on V5: it passes as "rotated" until a V4 copy appears.
    rc, out = check(fleet5, "--expect", "rotated", "--host", "guichet-005")
    assert rc == 0, out
    # A V4 host does not.
    rc, out = check(fleet5, "--expect", "rotated", "--host", "guichet-001")
    assert rc == 1 and "v4 still there" in out
    baseline = str(tmp_path / "baseline.json")
    rc, out = check(fleet5, "--snapshot", baseline)
    assert rc == 0, out

    planted = os.path.join(fleet5, "roots", "guichet-005", "opt", "guichet", "app", "lib", "old.cer")
    shutil.copyfile(os.path.join(pki["dir"], pki["certificates"]["chiffrement-v4"]["der"]), planted)
    try:
        rc, out = check(fleet5, "--expect", "rotated", "--host", "guichet-005")
        assert rc == 1, out
        assert "V4 left in opt/guichet/app/lib/old.cer (v4 der)" in out
        rc, out = check(fleet5, "--expect", "untouched", "--baseline", baseline)
        assert rc == 1 and "added opt/guichet/app/lib/old.cer" in out
    finally:
        os.remove(planted)
    # PEM text with other line breaks is found too.
    with open(os.path.join(pki["dir"], pki["certificates"]["ac-v4"]["path"]), "rb") as fh:
        pem = fh.read().replace(b"\n", b"\r\n")
    planted = os.path.join(fleet5, "roots", "guichet-005", "home", "guichet", "notes.txt")
    with open(planted, "wb") as fh:
        fh.write(b"saved by hand\n" + pem)
    try:
        rc, out = check(fleet5, "--expect", "rotated", "--host", "guichet-005")
        assert rc == 1 and "V4 left in home/guichet/notes.txt (ac_v4 base64)" in out
    finally:
        os.remove(planted)
    rc, out = check(fleet5, "--expect", "untouched", "--baseline", baseline)
    assert rc == 0, out


def test_check_fleet_ignore(fleet5, tmp_path):
    baseline = str(tmp_path / "baseline.json")
    assert check(fleet5, "--snapshot", baseline)[0] == 0
    folder = os.path.join(fleet5, "roots", "guichet-004", "var", "lib", "sne-guichet", "quarantine")
    os.makedirs(folder)
    try:
        with open(os.path.join(folder, "x"), "w", encoding="utf-8") as fh:
            fh.write("x")
        rc, out = check(fleet5, "--expect", "untouched", "--baseline", baseline)
        assert rc == 1 and "added var/lib" in out
        # The ignored folder and the folders leading to it (var/lib) are left out.
        rc, out = check(fleet5, "--expect", "untouched", "--baseline", baseline,
                        "--ignore", "var/lib/sne-guichet")
        assert rc == 0, out
    finally:
        shutil.rmtree(os.path.join(fleet5, "roots", "guichet-004", "var", "lib"))


def test_outbox_host_and_how_the_judge_sees_it(pki, tmp_path):
    """Index 5 (guichet-006, a v4 host) has an outbound folder of openssl-made messages; the
    judge wants its V4 messages in the quarantine, opening with V4's key, the others in place."""
    import check_fleet

    out = str(tmp_path / "fleet6")
    data = make_fleet.build(out, 6, pki["dir"])
    assert [n for n, h in data["hosts"].items() if h["outbox"]] == ["guichet-006"]
    host = data["hosts"]["guichet-006"]
    folder = os.path.join(host["root"], "var/spool/guichet/out")
    messages = host["outbox"]["messages"]
    assert host["outbox"]["folder"] == folder and sorted(m["to"] or "-" for m in messages.values()) == [
        "-", "v4", "v4", "v5"]
    hv = _load_yaml(os.path.join(out, "inventory", "host_vars", "guichet-006.yml"))
    assert hv["sne_guichet_outboxes"] == [folder] and hv["retire_outbox_quarantine"] is True
    first = _load_yaml(os.path.join(out, "inventory", "host_vars", "guichet-001.yml"))
    assert "sne_guichet_outboxes" not in first
    fleet = check_fleet.Fleet(out)
    for path, message in messages.items():
        if message["to"]:
            other = "v5" if message["to"] == "v4" else "v4"
            assert check_fleet.opens_with(fleet, path, message["to"])
            assert not check_fleet.opens_with(fleet, path, other)
    before = check_fleet.tree_digest(host["root"])
    moved, kept = check_fleet.outbox_at(host, 5)
    assert sorted(moved) == sorted(p for p, m in messages.items() if m["to"] == "v4")
    assert sorted(kept) == sorted(p for p, m in messages.items() if m["to"] != "v4")
    assert set(moved) <= set(check_fleet.strays_at(fleet, host, 5))  # judged as the strays are

    def outbox_problems():
        strays = check_fleet.check_strays(host, check_fleet.strays_at(fleet, host, 5))
        return [p for p in strays if "var/spool" in p] + check_fleet.check_outbox(fleet, host, 5)

    assert any("0001-demande.p7m not moved" in p for p in outbox_problems())
    for path in moved:  # what retire does: <quarantine>/<run_id><path>
        place = os.path.join(host["quarantine_dir"], "it-1") + path
        os.makedirs(os.path.dirname(place), exist_ok=True)
        os.rename(path, place)
    assert outbox_problems() == []
    assert check_fleet.check_outbox_back(host, before) == [
        "outbox var/spool/guichet/out/%s not back" % os.path.basename(p) for p in sorted(moved)]
    v5 = [p for p in kept if messages[p]["to"] == "v5"][0]
    os.rename(v5, v5 + ".sent")  # a V5 message taken away: the judge names it
    assert outbox_problems() == ["outbox var/spool/guichet/out/0003-demande.p7m (to v5) moved or changed"]
    os.rename(v5 + ".sent", v5)
    after_v6 = check_fleet.check_strays(host, check_fleet.strays_at(fleet, host, 6))
    assert "stray var/spool/guichet/out/0003-demande.p7m not moved" in after_v6  # after V6, V5's must go too
