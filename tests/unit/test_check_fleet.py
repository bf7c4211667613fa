"""Quick tests of the pure parts of tests/fleet/check_fleet.py, the judge of every fleet test.

The judge's checks on a real rotated fleet, each disabled in turn, are caught by the planted
faults of tests/integration/targets/rotate_fleet/runme.sh (step 2b); here: the tree comparison,
the places a rotation may change, the generation helpers, the grep for retired bytes (DER, and
base64 whatever its line breaks), the keytool listing parser, and the stray, configuration and
reload checks on small folders.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import types
from typing import Any, Dict, List

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLEET_DIR = os.path.join(ROOT, "tests", "fleet")
sys.path.insert(0, FLEET_DIR)

import check_fleet  # noqa: E402

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def fleet(pki: Dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> check_fleet.Fleet:
    """A Fleet with no host: the certificates of the test PKI by role."""
    out = tmp_path_factory.mktemp("fleet-judge")
    (out / "fleet.json").write_text(json.dumps({"hosts": {}, "pki": pki["dir"]}), encoding="utf-8")
    return check_fleet.Fleet(str(out))


def make_host(root: str, **extra: Any) -> Dict[str, Any]:
    """A fleet.json host entry laid out like make_fleet's, under ``root`` (nothing written)."""
    def p(rel: str) -> str:
        return os.path.join(root, rel)

    host = {
        "kind": "v4", "root": root,
        "stores": [{"path": p("opt/guichet/conf/app.jks"), "type": "jks"},
                   {"path": p("opt/guichet/conf/Chiffrement_SNEV5.cer"), "type": "der", "create": True},
                   {"path": p("etc/guichet/certs"), "type": "pem_dir"}],
        "strays": [p("opt/guichet/conf/Chiffrement_SNEV4.cer")],
        "stray_sha256": {p("opt/guichet/conf/Chiffrement_SNEV4.cer"): "00" * 32},
        "config_files": [p("opt/guichet/conf/guichet.properties")],
        "search_paths": [p("opt"), p("home"), p("etc/guichet")],
        "backup_dir": p("var/backups/sne-guichet"),
        "quarantine_dir": p("var/lib/sne-guichet/quarantine"),
        "reload_log": p("var/log/guichet-reload.log"),
        "refresh_log": p("var/log/update-ca-certificates.log"),
    }
    host.update(extra)
    return host


def write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


# --------------------------------------------------------------------------- generations


def test_generation_helpers() -> None:
    assert [check_fleet.generation_number(g) for g in ("V5", "v6", " V12 ")] == [5, 6, 12]
    for bad in ("six", "V", "5", "VV5"):
        with pytest.raises(ValueError):
            check_fleet.generation_number(bad)
    assert check_fleet.retired_generations(5) == [4]
    assert check_fleet.retired_generations(6) == [5, 4]
    assert check_fleet.forbidden_roles(5) == ["v4", "ac_v4"]
    assert check_fleet.forbidden_roles(6) == ["v5", "ac_v5", "v4", "ac_v4"]
    # A host still on V4 must hold nothing of V5 (AC V6 is the partner: not forbidden).
    assert check_fleet.forbidden_roles(4) == ["v5", "ac_v5"]
    assert check_fleet.der_path("/r/conf/Chiffrement_SNEV5.cer", 6) == "/r/conf/Chiffrement_SNEV6.cer"
    assert check_fleet.der_path("/r/Chiffrement_SNEV5.cer.bak", 6) == "/r/Chiffrement_SNEV5.cer.bak"
    assert check_fleet.colon("0aff") == "0A:FF"
    host = make_host("/r")
    at6 = check_fleet.stores_at(host, 6)
    assert [s["path"] for s in at6] == [
        "/r/opt/guichet/conf/app.jks", "/r/opt/guichet/conf/Chiffrement_SNEV6.cer", "/r/etc/guichet/certs"]
    assert host["stores"][1]["path"].endswith("SNEV5.cer")  # fleet.json's entry is left alone
    assert check_fleet.start_generation(host) == 4
    assert check_fleet.start_generation(dict(host, kind="v5")) == 5


def test_wanted_and_strays_by_generation(fleet: check_fleet.Fleet) -> None:
    assert fleet.generations == [4, 5, 6]
    assert check_fleet.wanted_in("der", "v5") == ["v5"]
    assert check_fleet.wanted_in("debian", "v5") == ["ac_v5", "partner"]
    assert check_fleet.wanted_in("jks", "v5", fleet) == ["v5", "ac_v5", "partner"]
    # In the test PKI the partner is AC V6: on V6 its check is the authority's.
    assert check_fleet.wanted_in("jks", "v6", fleet) == ["v6", "ac_v6"]
    host = make_host("/r")
    v4_leaf = hashlib.sha256(fleet.der["v4"]).hexdigest()
    assert check_fleet.strays_at(fleet, host, 5) == {"/r/opt/guichet/conf/Chiffrement_SNEV4.cer": "00" * 32}
    # After V6 the V5 DER file (made by the first rotation) is a stray too; a v5 host's only one.
    assert check_fleet.strays_at(fleet, dict(host, kind="v5", strays=[], stray_sha256={}), 6) == {
        "/r/opt/guichet/conf/Chiffrement_SNEV5.cer": hashlib.sha256(fleet.der["v5"]).hexdigest()}
    broken = dict(host, kind="broken", strays=[], stray_sha256={})
    assert check_fleet.strays_at(fleet, broken, 5) == {"/r/opt/guichet/conf/Chiffrement_SNEV4.cer": v4_leaf}


# --------------------------------------------------------------------------- trees


def test_tree_diff() -> None:
    before = {"a": ["f", "1", "0644", "0:0"], "b": ["f", "2", "0644", "0:0"],
              "d": ["d", None, "0755", "0:0"], "l": ["l", "x.pem", None, "0:0"],
              "m": ["f", "3", "0640", "0:0"], "o": ["f", "4", "0644", "0:0"]}
    after = {"a": ["f", "1", "0644", "0:0"], "c": ["f", "5", "0644", "0:0"],
             "d": ["d", None, "0755", "0:0"], "l": ["l", "y.pem", None, "0:0"],
             "m": ["f", "9", "0644", "0:0"], "o": ["f", "4", "0644", "1:1"]}
    assert check_fleet.tree_diff(before, after) == [
        ("b", "removed"), ("c", "added"), ("l", "changed"), ("m", "changed mode 0640->0644"),
        ("o", "owner 0:0->1:1")]
    assert check_fleet.tree_diff(before, dict(before)) == []
    # One byte changed is a changed digest: the same size is no excuse.
    assert check_fleet.tree_diff({"f": ["f", "aa", "0644", "0:0"]}, {"f": ["f", "ab", "0644", "0:0"]}) == [
        ("f", "changed")]


def test_tree_digest_and_filter(tmp_path: Any) -> None:
    root = str(tmp_path)
    write(os.path.join(root, "var/lib/sne-guichet/q/x"), b"x")
    write(os.path.join(root, "opt/a.pem"), b"a")
    os.chmod(os.path.join(root, "opt/a.pem"), 0o640)
    os.symlink("a.pem", os.path.join(root, "opt/link.0"))
    tree = check_fleet.tree_digest(root)
    assert tree["opt/a.pem"][:3] == ["f", hashlib.sha256(b"a").hexdigest(), "0640"]
    assert tree["opt/link.0"][:3] == ["l", "a.pem", None]
    assert tree["var/lib"][0] == "d"
    kept = check_fleet.filter_tree(tree, ["/var/lib/sne-guichet/"])
    # var and var/lib lead to the ignored folder: creating them is no change either.
    assert kept is not None and sorted(kept) == ["opt", "opt/a.pem", "opt/link.0"]
    assert check_fleet.filter_tree(tree, []) is tree
    assert check_fleet.filter_tree(None, ["var"]) is None


@pytest.mark.parametrize("rel,allowed", [
    ("opt/guichet/conf/app.jks", True),                       # a store
    ("opt/guichet/conf/Chiffrement_SNEV5.cer", True),         # a store the run creates
    ("etc/guichet/certs/1a2b3c4d.0", True),                   # inside a folder store
    ("opt/guichet/conf/guichet.properties", True),            # a configuration file
    ("opt/guichet/conf/Chiffrement_SNEV4.cer", True),         # a stray (moved away)
    ("var/backups/sne-guichet/it-1/manifest.jsonl", True),    # backups
    ("var/lib/sne-guichet/quarantine/it-1/x.cer", True),      # quarantine
    ("var/lib", True), ("var/lib/sne-guichet", True),         # folders leading to the quarantine
    ("var/log/guichet-reload.log", True), ("var/log/update-ca-certificates.log", True),
    ("opt/guichet/app/bin/guichet.sh", False),                # anything else
    ("opt/guichet/conf/app.jks.bak", False),                  # a name that only starts like a store
    ("etc/guichet/certs-old/x.pem", False),
    ("var/lib/other", False), ("var/log/guichet.log", False), ("home/guichet/.profile", False),
])
def test_allowed_change(rel: str, allowed: bool) -> None:
    assert check_fleet.allowed_change(make_host("/r"), rel) is allowed


def test_allowed_change_with_other_stores_and_strays() -> None:
    host = make_host("/r")
    v6 = check_fleet.stores_at(host, 6)
    assert check_fleet.allowed_change(host, "opt/guichet/conf/Chiffrement_SNEV6.cer", v6)
    assert not check_fleet.allowed_change(host, "opt/guichet/conf/Chiffrement_SNEV6.cer")
    assert check_fleet.allowed_change(host, "home/x.pem", strays=["/r/home/x.pem"])
    assert not check_fleet.allowed_change(host, "opt/guichet/conf/Chiffrement_SNEV4.cer", strays=[])


def test_check_collateral() -> None:
    host = make_host("/r")
    entry = ["f", "1", "0640", "0:0"]
    before = {"opt/guichet/conf/app.jks": entry, "opt/guichet/app/bin/guichet.sh": ["f", "2", "0755", "0:0"]}
    after = {"opt/guichet/conf/app.jks": ["f", "9", "0640", "0:0"], "opt/guichet/app/bin/guichet.sh":
             ["f", "2", "0755", "0:0"], "var/backups/sne-guichet/it-1/app.jks": entry}
    assert check_fleet.check_collateral(host, before, after) == []
    after["opt/guichet/app/bin/guichet.sh"] = ["f", "3", "0755", "0:0"]
    after["opt/guichet/conf/app.jks"] = ["f", "9", "0644", "0:0"]
    assert check_fleet.check_collateral(host, before, after) == [
        "changed outside stores/config/logs/backups/quarantine: changed opt/guichet/app/bin/guichet.sh",
        "mode or owner changed: changed mode 0640->0644 opt/guichet/conf/app.jks"]


# --------------------------------------------------------------------------- grep


def odd_base64(der: bytes) -> bytes:
    """base64 broken every 37, 64, 5 then 71 characters by CRLF, LF + spaces or a tab."""
    b64, out, i = base64.b64encode(der), b"", 0
    widths, seps = (37, 64, 5, 71), (b"\r\n", b"\n  ", b" \t\n")
    while b64:
        out += b64[:widths[i % 4]] + seps[i % 3]
        b64, i = b64[widths[i % 4]:], i + 1
    return out


def test_grep_retired_finds_der_and_base64_whatever_the_line_breaks(
        fleet: check_fleet.Fleet, tmp_path: Any) -> None:
    root = str(tmp_path)
    host = make_host(root)
    host["search_paths"].append(os.path.join(root, "var"))  # where the quarantine and backups are
    v4, ac_v4, v5 = fleet.der["v4"], fleet.der["ac_v4"], fleet.der["v5"]
    with open(fleet.pem_path["ac_v4"], "rb") as fh:
        ac_v4_pem = fh.read()
    write(os.path.join(root, "opt/app/lib/old.bin"), b"\x00prefix" + v4 + b"suffix")
    write(os.path.join(root, "opt/guichet/conf/guichet.properties"), b"a=b\n# kept:\n" + odd_base64(v4))
    write(os.path.join(root, "home/guichet/notes.txt"), b"by hand\r\n" + ac_v4_pem.replace(b"\n", b"\r\n"))
    write(os.path.join(root, "etc/guichet/certs/v5.pem"), base64.encodebytes(v5))  # V5: not retired
    write(os.path.join(root, "opt/half.txt"), base64.b64encode(v4)[:-8])         # no whole copy
    # Quarantine and backups are not searched, links are not followed, other paths not searched.
    write(os.path.join(host["quarantine_dir"], "it-1/x.cer"), v4)
    write(os.path.join(host["backup_dir"], "it-1/x.cer"), v4)
    os.symlink(os.path.join(root, "opt/app/lib/old.bin"), os.path.join(root, "home/link.cer"))
    write(os.path.join(root, "usr/local/share/x.crt"), v4)
    assert check_fleet.grep_retired(fleet, host, ["v4", "ac_v4"]) == [
        "opt/app/lib/old.bin (v4 der)",
        "opt/guichet/conf/guichet.properties (v4 base64)",
        "home/guichet/notes.txt (ac_v4 base64)"]
    assert check_fleet.grep_v4(fleet, host) == check_fleet.grep_retired(fleet, host, ["v4", "ac_v4"])
    assert check_fleet.grep_retired(fleet, host, ["v5"]) == ["etc/guichet/certs/v5.pem (v5 base64)"]
    assert base64.b64encode(ac_v4) not in ac_v4_pem  # the PEM holds it only once line breaks go


# --------------------------------------------------------------------------- stores


LISTING = """Keystore type: JKS
Keystore provider: SUN

Your keystore contains 2 entries

Alias name: guichet
Creation date: Dec 1, 2026
Entry type: PrivateKeyEntry
Certificate chain length: 2
Certificate[1]:
Owner: CN=guichet.example.test
Certificate fingerprints:
\t SHA1: 4D:67:D7:37:B1:DD:D8:EE:E3:D2:FC:B1:A7:71:47:36:C2:65:56:8D
\t SHA256: {a}
Certificate[2]:
Certificate fingerprints:
\t SHA256: {b}


*******************************************
*******************************************


Alias name: sne-chiffrement-v5
Creation date: Dec 1, 2026
Entry type: trustedCertEntry

Certificate fingerprints:
\t SHA256: {c}
"""


def test_keytool_listing_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    fps = [":".join([byte] * 32) for byte in ("AA", "BB", "CC")]
    calls: List[List[str]] = []

    def fake_run(argv: List[str], data: Any = None, env: Any = None) -> Any:
        calls.append(argv)
        return 0, LISTING.format(a=fps[0], b=fps[1], c=fps[2]), ""

    monkeypatch.setattr(check_fleet, "run", fake_run)
    monkeypatch.setattr(check_fleet.shutil, "which", lambda name: "/usr/bin/" + name)
    assert check_fleet.keytool_entries("/s.p12", "PKCS12", "pw") == [
        {"alias": "guichet", "type": "PrivateKeyEntry", "sha256": fps[:2]},
        {"alias": "sne-chiffrement-v5", "type": "trustedCertEntry", "sha256": fps[2:]}]
    assert calls[0][-6:] == ["-keystore", "/s.p12", "-storetype", "PKCS12", "-storepass", "pw"]
    monkeypatch.setattr(check_fleet, "run", lambda argv, data=None, env=None: (1, "", "keytool error: x\n"))
    with pytest.raises(RuntimeError, match="keytool -list failed"):
        check_fleet.keytool_entries("/s.jks", "JKS", "pw")


def test_private_key_entry_must_stay(monkeypatch: pytest.MonkeyPatch, fleet: check_fleet.Fleet) -> None:
    key = ":".join(["AA"] * 32)
    judged = types.SimpleNamespace(key_fp=key, key_alias="guichet")
    store = {"path": "/s.jks", "type": "jks", "password": "pw"}
    lost = ["private key entry 'guichet' lost or changed"]
    cases = [
        ([{"alias": "guichet", "type": "PrivateKeyEntry", "sha256": [key, fleet.fp["ac_v5"]]}], []),
        ([{"alias": "guichet", "type": "trustedCertEntry", "sha256": [key]}], lost),  # the key gone
        ([{"alias": "other", "type": "PrivateKeyEntry", "sha256": [key]}], lost),      # renamed
        ([{"alias": "guichet", "type": "PrivateKeyEntry", "sha256": [fleet.fp["v5"]]}], lost),  # another
        ([], lost),
    ]
    for entries, problems in cases:
        monkeypatch.setattr(check_fleet, "keytool_entries", lambda path, storetype, password, e=entries: e)
        fps, found, _facts = check_fleet.store_fingerprints(judged, store)
        assert found == problems, entries
        assert key not in fps  # the key's own certificate is no certificate of the store


@needs_openssl
def test_pem_and_der_stores(fleet: check_fleet.Fleet, tmp_path: Any) -> None:
    with open(fleet.pem_path["v5"], "rb") as fh:
        v5_pem = fh.read()
    with open(fleet.pem_path["ac_v5"], "rb") as fh:
        ac_pem = fh.read()
    pem = write(str(tmp_path / "sne.pem"), b"# comment\n" + v5_pem + ac_pem.replace(b"\n", b"\r\n"))
    fps, problems, _unused = check_fleet.store_fingerprints(fleet, {"path": pem, "type": "pem"})
    assert fps == {fleet.fp["v5"], fleet.fp["ac_v5"]} and problems == []
    write(pem, v5_pem)
    problems = check_fleet.store_fingerprints(fleet, {"path": pem, "type": "pem"})[1]
    assert problems == ["leading comment line lost"]
    der = write(str(tmp_path / "x.cer"), fleet.der["v4"])
    assert check_fleet.store_fingerprints(fleet, {"path": der, "type": "der"})[0] == {fleet.fp["v4"]}
    write(der, b"not a certificate")
    with pytest.raises(RuntimeError, match="openssl x509 cannot read it"):
        check_fleet.store_fingerprints(fleet, {"path": der, "type": "der"})


# --------------------------------------------------------------------------- strays, config, reload


def test_check_strays(tmp_path: Any) -> None:
    root = str(tmp_path)
    stray = os.path.join(root, "home/old.cer")
    host = make_host(root, strays=[stray], stray_sha256={stray: hashlib.sha256(b"V4").hexdigest()})
    quarantined = write(os.path.join(host["quarantine_dir"], "it-1" + stray), b"V4")
    assert check_fleet.check_strays(host) == []
    write(stray, b"V4")  # put back: not moved
    assert check_fleet.check_strays(host) == ["stray home/old.cer not moved"]
    os.remove(stray)
    lost = ["stray home/old.cer not in quarantine with its original content"]
    write(quarantined, b"V4 edited")  # the quarantine's copy is not the original
    assert check_fleet.check_strays(host) == lost
    os.remove(quarantined)  # deleted, not moved
    assert check_fleet.check_strays(host) == lost


def test_check_config(tmp_path: Any) -> None:
    host = make_host(str(tmp_path))
    conf = host["config_files"][0]
    write(conf, b"cert=/r/Chiffrement_SNEV5.cer\nalias=sne-chiffrement-v5\n")
    assert check_fleet.check_config(host, "v5") == []
    assert check_fleet.check_config(host, "v4") == [
        "opt/guichet/conf/guichet.properties: no Chiffrement_SNEV4.cer",
        "opt/guichet/conf/guichet.properties: no sne-chiffrement-v4",
        "opt/guichet/conf/guichet.properties: still Chiffrement_SNEV5.cer",
        "opt/guichet/conf/guichet.properties: still sne-chiffrement-v5"]
    write(conf, b"cert=/r/Chiffrement_SNEV5.cer\nalias=sne-chiffrement-v4\n")
    assert check_fleet.check_config(host, "v5") == [
        "opt/guichet/conf/guichet.properties: no sne-chiffrement-v5",
        "opt/guichet/conf/guichet.properties: still sne-chiffrement-v4"]
    os.remove(conf)
    assert check_fleet.check_config(host, "v5") == [
        "opt/guichet/conf/guichet.properties: [Errno 2] No such file or directory: %r" % conf]


def test_check_reload(tmp_path: Any) -> None:
    host = make_host(str(tmp_path))
    assert check_fleet.check_reload(host) == ["reload command did not run (no var/log/guichet-reload.log)",
                                              "trust anchors refresh did not run"]
    write(host["reload_log"], b"")
    write(host["refresh_log"], b"2026-01-01 update-ca-certificates\n")
    assert check_fleet.check_reload(host) == ["reload command did not run"]
    write(host["reload_log"], b"reloaded\n")
    assert check_fleet.check_reload(host) == []
    write(host["refresh_log"], b"\n")
    assert check_fleet.check_reload(host) == ["trust anchors refresh did not run"]
    write(host["refresh_log"], b"2026-01-01 update-ca-certificates\n")
    # With a baseline: the logs must have changed since (the commands ran again).
    now = check_fleet.tree_digest(str(tmp_path))
    assert check_fleet.check_reload(host, now, now) == [
        "reload command did not run again since the baseline (var/log/guichet-reload.log unchanged)",
        "trust anchors refresh did not run again since the baseline "
        "(var/log/update-ca-certificates.log unchanged)"]
    write(host["reload_log"], b"reloaded\nreloaded\n")
    write(host["refresh_log"], b"2026-01-01 update-ca-certificates\n" * 2)
    assert check_fleet.check_reload(host, now, check_fleet.tree_digest(str(tmp_path))) == []


# --------------------------------------------------------------------------- one host, no JVM


@pytest.fixture
def small(pki: Dict[str, Any], tmp_path: Any) -> Any:
    """A host rotated to V5 by hand, its stores without a JVM (PEM bundle, DER file, hashed
    folder), in a fleet of its own: (fleet, host, pem file, hashed folder, tree now)."""
    root = str(tmp_path / "roots" / "h")
    host = make_host(root)
    jks, der, folder = host["stores"]
    host["stores"] = [{"path": os.path.join(root, "opt/guichet/conf/sne.pem"), "type": "pem"}, der, folder]
    certs = pki["certificates"]

    def cert(ident: str, form: str = "path") -> bytes:
        with open(os.path.join(pki["dir"], certs[ident][form]), "rb") as fh:
            return fh.read()

    bundle = b"# SNE\n" + cert("chiffrement-v5") + cert("ac-v5") + cert("ac-v6")
    pem = write(host["stores"][0]["path"], bundle)
    write(der["path"], cert("chiffrement-v5", "der"))
    for ident in ("chiffrement-v5", "ac-v5", "ac-v6"):
        write(os.path.join(folder["path"], ident + ".pem"), cert(ident))
    rehash(folder["path"])
    old = host["strays"][0]
    write(host["quarantine_dir"] + "/it-1" + old, cert("chiffrement-v4", "der"))
    host["stray_sha256"][old] = hashlib.sha256(cert("chiffrement-v4", "der")).hexdigest()
    write(host["config_files"][0], b"cert=Chiffrement_SNEV5.cer\nalias=sne-chiffrement-v5\n")
    write(host["reload_log"], b"reloaded\n")
    write(host["refresh_log"], b"refreshed\n")
    fleet_json = json.dumps({"hosts": {"h": host}, "pki": pki["dir"]})
    (tmp_path / "fleet.json").write_text(fleet_json, encoding="utf-8")
    judge = check_fleet.Fleet(str(tmp_path))
    return judge, judge.hosts["h"], pem, folder["path"], check_fleet.tree_digest(root)


def rehash(folder: str) -> None:
    subprocess.run(["openssl", "rehash", folder], check=True, capture_output=True)


@needs_openssl
def test_check_stores_on_a_small_host(small: Any) -> None:
    judge, host, pem, folder, _tree = small
    assert check_fleet.check_stores(judge, host, "v5") == []
    with open(pem, "rb") as fh:
        good = fh.read()
    with open(judge.pem_path["v4"], "rb") as fh:
        v4 = fh.read()
    first = good[good.index(b"-----BEGIN"):good.index(b"-----END CERTIFICATE-----\n") + 26]  # V5
    write(pem, good.replace(first, b"") + v4)
    assert check_fleet.check_stores(judge, host, "v5") == ["opt/guichet/conf/sne.pem: v5 missing",
                                                           "opt/guichet/conf/sne.pem: v4 still there"]
    write(pem, good)
    os.symlink("gone.pem", os.path.join(folder, "0badc0de.0"))
    assert check_fleet.check_stores(judge, host, "v5") == ["etc/guichet/certs: dangling link 0badc0de.0"]
    os.remove(os.path.join(folder, "0badc0de.0"))
    write(os.path.join(folder, "old.pem"), v4)
    rehash(folder)
    assert check_fleet.check_stores(judge, host, "v5") == [
        "etc/guichet/certs: v4 still there", "etc/guichet/certs: openssl verify -CApath still accepts V4"]
    os.remove(os.path.join(folder, "old.pem"))
    for name in os.listdir(folder):
        if os.path.islink(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    assert check_fleet.check_stores(judge, host, "v5") == [
        "etc/guichet/certs: openssl verify -CApath fails for V5"]
    assert check_fleet.check_stores(judge, host, "v6")[0] == "opt/guichet/conf/sne.pem: v6 missing"


@needs_openssl
def test_check_host_by_kind(small: Any) -> None:
    judge, host, pem, _folder, tree = small
    baseline = {"hosts": {"h": tree}}
    result = check_fleet.check_host(judge, "h", "rotated", None)
    assert result["ok"], result
    assert check_fleet.check_host(judge, "h", "untouched", baseline)["ok"]
    # A fleet made on V5 for this host: with a baseline, nothing may change; without one, no
    # byte identity is checked (a note says so).
    host["kind"] = "v5"
    assert check_fleet.check_host(judge, "h", "rotated", baseline)["ok"]
    notes = check_fleet.check_host(judge, "h", "rotated", None)["notes"]
    assert notes == ["no baseline: byte identity not checked"]
    with open(pem, "rb") as fh:
        data = fh.read()
    write(pem, data.replace(b"# SNE", b"# SNF", 1))  # one byte, in the comment: the certificates hold
    changed = "changed opt/guichet/conf/sne.pem"
    for kind, expect, problem in (("v5", "rotated", "host already on V5 changed: "),
                                  ("broken", "rotated", "broken host changed: "),
                                  ("unconfigured", "rotated", "unconfigured host changed: "),
                                  ("v4", "untouched", "changed: ")):
        host["kind"] = kind
        assert check_fleet.check_host(judge, "h", expect, baseline)["problems"] == [problem + changed], kind
    problems = check_fleet.check_host(judge, "h", "rotated", {"hosts": {}})["problems"]
    assert problems[0] == "not in the baseline"
