"""Quick tests of the fleet harness: tests/fleet/make_fleet.py and tests/fleet/check_fleet.py."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys

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
ROTATION_VARS = {"sne_generation", "sne_bundle_src", "sne_certificate_sha256", "sne_authority_sha256",
                 "sne_retired_sha256", "sne_valid_at"}


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
        assert [c["replace"] for c in hv["sne_guichet_config_files"]] == [
            "Chiffrement_SNE{{ sne_generation }}.cer", "sne-chiffrement-{{ sne_generation | lower }}"]
        assert hv["sne_guichet_config_files"][0]["regexp"] == r"Chiffrement_SNEV4\.cer"
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
    assert os.path.isfile(rotation["sne_bundle_src"])


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
