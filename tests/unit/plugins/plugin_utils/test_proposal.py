"""From audit to inventory: the host_vars proposal (plugins/plugin_utils/_proposal/).

The rules on hand-made scan results, the YAML rendering, and for real: a simulated guichet
(tests/fleet/make_fleet.py: JKS with a private key, PKCS#12 truststore, PEM bundle, DER
certificate named by guichet.properties, hashed PEM folder, Debian anchors) is scanned by the
scan engine, the proposal is made from the result, its placeholders are filled with the real
passwords, and the keystores module (its main(), argument spec included) converges the host.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys

import jinja2
import pytest
import yaml

from ansible_collections.sne.guichet.plugins.module_utils._scan import scan
from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.names import ProposalError, new_name
from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.propose import propose
from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.yaml_text import render_yaml, variables

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))

import make_fleet  # noqa: E402
from nsstools import add, fingerprint, make_db, needs_certutil  # noqa: E402

V4, AC4, V5, AC5 = ("AA:" * 31 + "04", "AC:" * 31 + "04", "AA:" * 31 + "05", "AC:" * 31 + "05")
CURRENT, RETIRED = [V5, AC5], [V4, AC4]
PLACEHOLDER = re.compile(r"^\{\{ (vault_[a-z0-9_]+) \}\}$")


def place(path, fmt, alias=None, index=None, target=None):
    return {"path": path, "format": fmt, "alias": alias, "index": index, "target": target}


def info(cn, is_ca):
    return {"subject": "CN=%s" % cn, "not_after": "2040-01-01T00:00:00Z", "is_ca": is_ca}


@pytest.fixture
def result():
    """What scan would return for a host with one of everything (paths under /h)."""
    return {
        "found": {
            V4: [
                place("/h/opt/app/conf/Chiffrement_SNEV4.cer", "der"),
                place("/h/opt/app/conf/app.jks", "jks", alias="sne-chiffrement-v4"),
                place("/h/opt/app/conf/old.jceks", "jceks", alias="sne"),
                place("/h/opt/app/conf/sne.pem", "pem", index=1),
                place("/h/opt/app/lib/Chiffrement_SNEV4.cer", "der"),
                place("/h/opt/app/two.der", "der", index=0),
                place("/h/opt/app/sne.b64.cer", "base64"),
                place("/h/etc/guichet/certs/8f5dbf0c.0", "link", target="/h/etc/guichet/certs/v4.pem"),
                place("/h/etc/guichet/certs/v4.pem", "pem", index=0),
                place("/h/etc/ssl/certs/8f5dbf0c.0", "link", target="/h/usr/share/x/v4.pem"),
                place("/h/srv/links/8f5dbf0c.0", "link", target="/h/home/g/sne.pem"),  # links only
                place("/h/home/g/sne.pem", "pem", index=0),
                place("/h/home/g/copy.cer", "pem", index=0),
                place("/h/srv/declared/v4.pem", "pem", index=0),
            ],
            AC4: [
                place("/h/opt/app/conf/app.jks", "jks", alias="sne-ac-v4"),
                place("/h/opt/app/conf/sne.pem", "pem", index=2),
                place("/h/opt/app/conf/AC_SNE_V4.der", "der"),
                place("/h/usr/local/share/ca-certificates/sne/ac-v4.crt", "pem", index=0),
                place("/h/etc/pki/ca-trust/source/anchors/ac-v4.pem", "pem", index=0),
                place("/h/etc/ssl/certs/ca-certificates.crt", "pem", index=40),
            ],
            V5: [
                place("/h/opt/app/conf/Chiffrement_SNEV5.cer", "der"),
                place("/h/opt/app/v5.pem", "pem", index=0),
                place("/h/opt/app/two.der", "der", index=1),
            ],
            AC5: [place("/h/opt/app/ac-v5.pem", "pem", index=0)],
            "BB:" * 31 + "06": [place("/h/opt/app/other.pem", "pem", index=0)],  # neither
        },
        "certificates": {V4: info("Chiffrement_SNEV4", False), AC4: info("AC SNE V4", True),
                         V5: info("Chiffrement_SNEV5", False), AC5: info("AC SNE V5", True)},
        "files": {
            "/h/opt/app/conf/Chiffrement_SNEV4.cer": {"format": "der", "certificates": 1, "matched": 1},
            "/h/opt/app/conf/Chiffrement_SNEV5.cer": {"format": "der", "certificates": 1, "matched": 1},
            "/h/opt/app/conf/AC_SNE_V4.der": {"format": "der", "certificates": 1, "matched": 1},
            "/h/opt/app/conf/app.jks": {"format": "jks", "certificates": 5, "matched": 2},
            "/h/opt/app/conf/old.jceks": {"format": "jceks", "certificates": 1, "matched": 1},
            "/h/opt/app/conf/sne.pem": {"format": "pem", "certificates": 3, "matched": 2},
            "/h/opt/app/lib/Chiffrement_SNEV4.cer": {"format": "der", "certificates": 1, "matched": 1},
            "/h/opt/app/two.der": {"format": "der", "certificates": 2, "matched": 2},
            "/h/opt/app/sne.b64.cer": {"format": "base64", "certificates": 1, "matched": 1},
            "/h/opt/app/v5.pem": {"format": "pem", "certificates": 1, "matched": 1},
            "/h/opt/app/ac-v5.pem": {"format": "pem", "certificates": 1, "matched": 1},
            "/h/opt/app/other.pem": {"format": "pem", "certificates": 1, "matched": 1},
            "/h/etc/guichet/certs/v4.pem": {"format": "pem", "certificates": 1, "matched": 1},
            "/h/home/g/sne.pem": {"format": "pem", "certificates": 1, "matched": 1},
            "/h/home/g/copy.cer": {"format": "pem", "certificates": 1, "matched": 1},
            "/h/srv/declared/v4.pem": {"format": "pem", "certificates": 1, "matched": 1},
            "/h/usr/local/share/ca-certificates/sne/ac-v4.crt": {"format": "pem", "certificates": 1,
                                                                 "matched": 1},
            "/h/etc/pki/ca-trust/source/anchors/ac-v4.pem": {"format": "pem", "certificates": 1,
                                                             "matched": 1},
            "/h/etc/ssl/certs/ca-certificates.crt": {"format": "pem", "certificates": 140, "matched": 1},
        },
        "unreadable": [
            {"path": "/h/opt/app/conf/trust.p12", "format": "pkcs12",
             "reason": "PKCS#12 file whose certificates are encrypted: give its password in passwords"},
            {"path": "/h/opt/app/conf/damaged.jks", "format": None, "reason": "keystore truncated"},
        ],
        "references": {
            "/h/opt/app/conf/Chiffrement_SNEV4.cer": ["/h/opt/app/conf/a.properties",
                                                      "/h/opt/app/conf/b.xml"],
            "/h/opt/app/conf/AC_SNE_V4.der": ["/h/opt/app/conf/a.properties"],
            "/h/opt/app/conf/app.jks": ["/h/opt/app/conf/a.properties"],
            "/h/opt/app/lib/Chiffrement_SNEV4.cer": [],
            "/h/opt/app/sne.b64.cer": ["/h/opt/app/conf/b.xml"],
            "/h/etc/guichet/certs/v4.pem": ["/h/opt/app/conf/b.xml"],
            "/h/home/g/sne.pem": ["/h/home/g/.profile"],
        },
        "missing": ["/h/nowhere"],
    }


def make(result, **kwargs):
    options = dict(host="guichet-042", search_paths=["/h/opt", "/h/home", "/h/etc", "/h/nowhere", "/h/opt"],
                   stores=[{"path": "/h/srv/declared", "type": "pem_dir"},
                           {"path": "/h/opt/app/conf/old.jceks", "type": "jks", "password": "s3cret!"}],
                   config_files=[{"path": "/h/opt/app/conf/a.properties", "regexp": "sne-chiffrement-v4",
                                  "replace": "sne-chiffrement-v5"}])
    options.update(kwargs)
    return propose(result, CURRENT, [v.lower() for v in RETIRED], "V5", **options)


CERT_NAME = "sne-chiffrement-{{ sne_generation | lower }}"
AC_NAME = "sne-ac-{{ sne_generation | lower }}"


def test_every_rule(result):
    proposal = make(result)
    assert proposal["sne_guichet_stores"] == [
        {"path": "/h/etc/guichet/certs", "type": "pem_dir"},
        {"path": "/h/etc/pki/ca-trust/source/anchors", "type": "redhat"},
        {"path": "/h/home/g/sne-v5.pem", "type": "pem", "create": True, "names": [CERT_NAME]},
        {"path": "/h/opt/app/ac-v5.pem", "type": "pem", "names": [AC_NAME]},
        {"path": "/h/opt/app/conf/AC_SNE_{{ sne_generation }}.der", "type": "der", "create": True,
         "names": [AC_NAME]},
        {"path": "/h/opt/app/conf/Chiffrement_SNEV5.cer", "type": "der"},
        {"path": "/h/opt/app/conf/app.jks", "type": "jks", "password": "{{ vault_guichet_042_app_jks }}"},
        {"path": "/h/opt/app/conf/old.jceks", "type": "jks",
         "password": "{{ vault_guichet_042_old_jceks }}"},
        {"path": "/h/opt/app/conf/sne.pem", "type": "pem"},
        {"path": "/h/opt/app/conf/trust.p12", "type": "pkcs12",
         "password": "{{ vault_guichet_042_trust_p12 }}"},
        {"path": "/h/opt/app/v5.pem", "type": "pem", "names": [CERT_NAME]},
        {"path": "/h/srv/declared", "type": "pem_dir"},
        {"path": "/h/srv/links", "type": "pem_dir"},
        {"path": "/h/usr/local/share/ca-certificates", "type": "debian"},
    ]
    assert proposal["sne_guichet_config_files"] == [
        {"path": "/h/home/g/.profile", "regexp": r"sne\.pem", "replace": "sne-v5.pem"},
        {"path": "/h/opt/app/conf/a.properties", "regexp": r"AC_SNE_V[0-9]+\.der",
         "replace": "AC_SNE_{{ sne_generation }}.der"},
        {"path": "/h/opt/app/conf/a.properties", "regexp": r"Chiffrement_SNEV[0-9]+\.cer",
         "replace": "Chiffrement_SNE{{ sne_generation }}.cer"},
        {"path": "/h/opt/app/conf/a.properties", "regexp": "sne-chiffrement-v4",
         "replace": "sne-chiffrement-v5"},
        {"path": "/h/opt/app/conf/b.xml", "regexp": r"Chiffrement_SNEV[0-9]+\.cer",
         "replace": "Chiffrement_SNE{{ sne_generation }}.cer"},
    ]
    assert proposal["sne_guichet_search_paths"] == ["/h/opt", "/h/home", "/h/etc", "/h/nowhere"]
    notes = "\n".join(proposal["notes"])
    assert proposal["notes"][0].startswith("define vault_guichet_042_app_jks, vault_guichet_042_old_jceks, "
                                           "vault_guichet_042_trust_p12 in the vault")
    for expected in (
            "/h/opt/app/lib/Chiffrement_SNEV4.cer: holds only retired certificates and no configuration "
            "file names it: the retire step quarantines it",
            "/h/home/g/copy.cer: holds only retired certificates; the scan did not look",
            "/h/opt/app/conf/trust.p12: a PKCS#12 keystore the scan could not read without its password",
            "/h/opt/app/conf/damaged.jks: not read by the scan: keystore truncated",
            "/h/opt/app/two.der: a DER file of 2 certificates",
            "/h/opt/app/sne.b64.cer: holds only retired certificates, as bare base64",
            "/h/etc/guichet/certs/v4.pem: named by /h/opt/app/conf/b.xml, but inside the store "
            "/h/etc/guichet/certs (pem_dir)",
            "/h/etc/ssl/certs/ca-certificates.crt: in /h/etc/ssl/certs, which update-ca-certificates",
            "/h/opt/app/conf/app.jks: holds retired certificates under the aliases sne-ac-v4, "
            "sne-chiffrement-v4",
            "search path /h/nowhere does not exist on this host"):
        assert expected in notes
    assert "other.pem" not in notes and "s3cret" not in json.dumps(proposal)
    assert proposal["reasons"]["/h/opt/app/conf/trust.p12"].startswith("PKCS#12 keystore NOT READ")
    assert proposal["reasons"]["/h/opt/app/conf/a.properties"] == (
        "names a retired file: AC_SNE_V4.der -> AC_SNE_V5.der, "
        "Chiffrement_SNEV4.cer -> Chiffrement_SNEV5.cer")
    assert set(proposal["reasons"]) >= {s["path"] for s in proposal["sne_guichet_stores"]}
    assert proposal["reasons"]["/h/srv/links"].endswith("holding the retired generation")
    assert proposal["reasons"]["/h/usr/local/share/ca-certificates"] == (
        "Debian trust anchors (update-ca-certificates), holding the retired generation")


def test_deterministic_whatever_the_order(result):
    expected = make(result)
    shuffled = json.loads(json.dumps(result))
    rng = random.Random(4)
    for places in shuffled["found"].values():
        rng.shuffle(places)
    shuffled["found"] = dict(reversed(list(shuffled["found"].items())))
    shuffled["files"] = dict(reversed(list(shuffled["files"].items())))
    shuffled["unreadable"].reverse()
    assert make(shuffled) == expected


def test_without_host_declarations_or_references(result):
    del result["references"]
    proposal = propose(result, CURRENT, RETIRED, "V5")
    stores = dict((s["path"], s) for s in proposal["sne_guichet_stores"])
    assert stores["/h/opt/app/conf/old.jceks"]["password"] == "{{ vault_old_jceks }}"
    assert "/h/opt/app/conf/Chiffrement_SNEV5.cer" in stores  # holds V5 already
    assert not any(p.endswith(("AC_SNE_V5.der", "sne-v5.pem")) for p in stores)
    assert proposal["sne_guichet_config_files"] == [] and proposal["sne_guichet_search_paths"] == []
    assert "/h/home/g/sne.pem: holds only retired certificates; the scan did not look" in "\n".join(
        proposal["notes"])


def test_declared_store_covers_what_is_inside_and_keeps_its_options(result):
    stores = [{"path": "/h/opt/app/conf/app.jks", "type": "jks", "password": "real", "owner": "guichet"},
              {"path": "/h/usr/local/share/ca-certificates/", "type": "debian", "refresh": "/bin/true"}]
    proposal = make(result, stores=stores)
    listed = dict((s["path"], s) for s in proposal["sne_guichet_stores"])
    assert listed["/h/opt/app/conf/app.jks"] == {"path": "/h/opt/app/conf/app.jks", "type": "jks",
                                                 "password": "{{ vault_guichet_042_app_jks }}",
                                                 "owner": "guichet"}
    assert listed["/h/usr/local/share/ca-certificates/"]["refresh"] == "/bin/true"
    assert "/h/usr/local/share/ca-certificates" not in listed
    assert proposal["reasons"]["/h/opt/app/conf/app.jks"] == "declared in the host's variables"


def test_placeholders_are_unique_identifiers(result):
    for name in ("conf/app.jks", "lib/app.jks", "app.jks", "Kéy Störe.p12"):
        path = "/h/x/" + name
        result["found"][V4].append(place(path, "pkcs12" if name.endswith("p12") else "jks"))
        result["files"][path] = {"format": "jks", "certificates": 1, "matched": 1}
    proposal = make(result, host="Guichet-042.example.org")
    names = [PLACEHOLDER.match(s["password"]).group(1) for s in proposal["sne_guichet_stores"]
             if "password" in s]
    assert len(names) == len(set(names)) == 7
    assert "vault_guichet_042_example_org_k_y_st_re_p12" in names
    assert {"vault_guichet_042_example_org_app_jks", "vault_guichet_042_example_org_conf_app_jks",
            "vault_guichet_042_example_org_lib_app_jks"} <= set(names)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for store in proposal["sne_guichet_stores"]:
        if "password" in store:
            var = PLACEHOLDER.match(store["password"]).group(1)
            assert var.isidentifier()
            assert env.from_string(store["password"]).render({var: "pw-" + var}) == "pw-" + var


@pytest.mark.parametrize("old, new, digits_only", [
    ("Chiffrement_SNEV4.cer", "Chiffrement_SNEV5.cer", "Chiffrement_SNEV5.cer"),
    ("sne-v4.pem", "sne-v5.pem", "sne-v5.pem"),
    ("x509v3-sne-v4.pem", "x509v3-sne-v5.pem", "x509v3-sne-v5.pem"),
    ("AC_SNE_V12.der", "AC_SNE_V5.der", "AC_SNE_V5.der"),
    ("sne.cer", "sne-v5.cer", "sne-5.cer"),
    ("sne", "sne-v5", "sne-5"),
])
def test_new_names(old, new, digits_only):
    assert new_name(old, "V5") == new
    assert new_name(old, "5") == digits_only


def test_a_file_already_named_after_the_new_generation_is_replaced_in_place(result):
    path = "/h/opt/app/Chiffrement_SNEV5.cer"
    result["found"][V4].append(place(path, "der"))
    result["files"][path] = {"format": "der", "certificates": 1, "matched": 1}
    result["references"][path] = ["/h/opt/app/conf/a.properties"]
    proposal = make(result)
    assert {"path": path, "type": "der"} in proposal["sne_guichet_stores"]
    assert not any(e["regexp"] == r"Chiffrement_SNEV5\.cer" for e in proposal["sne_guichet_config_files"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(current=[V4]), "current and retired both name"),
    (dict(current=["AB:CD"]), "current: not a SHA-256 fingerprint"),
    (dict(retired=[V4, "zz"]), "retired: not a SHA-256"),
    (dict(generation=""), "generation"),
    (dict(generation="V5/x"), "generation"),
])
def test_bad_arguments(result, kwargs, message):
    arguments = dict(current=CURRENT, retired=RETIRED, generation="V5")
    arguments.update(kwargs)
    with pytest.raises(ProposalError, match=message):
        propose(result, **arguments)
    with pytest.raises(ProposalError, match="expects the result of sne.guichet.scan"):
        propose(["not", "a", "dict"], CURRENT, RETIRED, "V5")


# --------------------------------------------------------------------------- YAML


def test_yaml_round_trips_and_is_commented(result):
    proposal = make(result)
    text = render_yaml(proposal, host="guichet-042", date="2026-06-01T08:00:00Z")
    assert yaml.safe_load(text) == variables(proposal)
    assert set(yaml.safe_load(text)) == {"sne_guichet_stores", "sne_guichet_config_files",
                                         "sne_guichet_search_paths"}
    head = text.split("\nsne_guichet_stores:", maxsplit=1)[0]
    assert head.startswith("---\n# Proposed host_vars for host guichet-042\n"
                           "# Generated by the sne.guichet audit on 2026-06-01T08:00:00Z.\n")
    assert "REVIEW BEFORE USE" in head and "host_vars/guichet-042.yml" in head and "vault" in head
    assert "#  - define vault_guichet_042_app_jks" in head
    assert all(line.startswith("#") or line in ("---", "") for line in head.splitlines())
    assert "  # PKCS#12 keystore NOT READ" in text
    assert max(len(line) for line in text.splitlines() if line.lstrip().startswith("#")) <= 130


def test_yaml_of_awkward_paths_and_empty_lists():
    odd = "/h/opt/" + os.fsdecode(b"sne-\xe9t\xe9") + "\n#: {{x}}.jks"
    result = {"found": {V4: [place(odd, "jks")]},
              "files": {odd: {"format": "jks", "certificates": 1, "matched": 1}}}
    proposal = propose(result, CURRENT, RETIRED, "V5", host="h")
    text = render_yaml(proposal)
    assert yaml.safe_load(text) == variables(proposal)
    assert yaml.safe_load(text)["sne_guichet_stores"][0]["path"] == odd
    assert "sne_guichet_config_files: []" in text and "sne_guichet_search_paths: []" in text
    assert re.search(r"on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.", text)
    empty = propose({}, CURRENT, RETIRED, "V5")
    assert empty["sne_guichet_stores"] == [] and empty["notes"] == []
    assert yaml.safe_load(render_yaml(empty)) == variables(empty)
    with pytest.raises(ProposalError):
        render_yaml("text")


def test_values_from_ansible_are_plain_again(result):
    """Ansible passes subclasses of str, dict and list (tagged values): yaml.safe_dump cannot
    represent them; the proposal and its rendering are made of built-in types."""

    class Tagged(str):
        pass

    class Lazy(dict):
        pass

    def tag(value):
        if isinstance(value, dict):
            return Lazy((tag(k), tag(v)) for k, v in value.items())
        if isinstance(value, list):
            return [tag(v) for v in value]
        return Tagged(value) if isinstance(value, str) else value

    proposal = make(tag(result), host=Tagged("guichet-042"), search_paths=tag(["/h/opt"]))
    assert proposal == make(result, search_paths=["/h/opt"])
    assert type(proposal["sne_guichet_stores"][0]["path"]) is str  # pylint: disable=unidiomatic-typecheck
    assert yaml.safe_load(render_yaml(tag(proposal), host=Tagged("guichet-042"))) == variables(proposal)


# --------------------------------------------------------------------------- for real


@pytest.fixture(scope="module")
def fleet(pki, tmp_path_factory):
    if shutil.which("keytool") is None or shutil.which("openssl") is None:
        pytest.skip("keytool and openssl are needed to build the simulated fleet")
    out = str(tmp_path_factory.mktemp("proposal_fleet"))
    data = make_fleet.build(out, 2, pki["dir"])  # guichet-001 (v4, PKCS#12), guichet-002 (strays)
    return data


def _pem(pki, name):
    with open(os.path.join(pki["dir"], pki["certificates"][name]["path"])) as handle:
        return handle.read()


def _keystores(params, check_mode, monkeypatch):
    """Run the keystores module's main() with these arguments; its result."""
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    from ansible_collections.sne.guichet.plugins.modules import keystores

    class Done(Exception):
        pass

    out = {}

    def finish(module, **kwargs):
        out.update(kwargs)
        raise Done()

    args = dict(params, _ansible_check_mode=check_mode)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)  # ansible-core >= 2.19
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", finish)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json",
                        lambda module, **kw: finish(module, failed=True, **kw))
    with pytest.raises(Done):
        keystores.main()
    return out


@pytest.mark.parametrize("name", ["guichet-001", "guichet-002"])
def test_a_real_host_from_audit_to_rotation(pki, fleet, name, tmp_path, monkeypatch):
    host = fleet["hosts"][name]
    root = host["root"]
    fps = fleet["fingerprints"]
    current = [fps["chiffrement-v5"], fps["ac-v5"]]
    retired = [fps["chiffrement-v4"], fps["ac-v4"]]
    paths = list(host["search_paths"])
    if not any(p.endswith("/usr/local") for p in paths):
        paths.append(os.path.join(root, "usr/local"))  # where the Debian anchors are

    # 1. the audit: one scan, nothing declared, no password given
    found = scan(paths, sha256=current + retired, references_of=retired)
    proposal = propose(found, current, retired, "V5", host=name, search_paths=paths)
    text = render_yaml(proposal, host=name, date="2026-06-01T08:00:00Z")
    assert yaml.safe_load(text) == variables(proposal)

    # every store of the host, with the right type; nothing else (new file names are templated
    # with sne_generation, as Ansible renders host_vars, so the next rotation needs no new ones)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def render(value, **extra):
        return env.from_string(value).render(dict(extra, sne_generation="V5"))

    stores = []
    for store in proposal["sne_guichet_stores"]:
        store = dict(store, path=render(store["path"]))
        if "names" in store:
            store["names"] = [render(n) for n in store["names"]]
        stores.append(store)
    assert sorted((s["path"], s["type"]) for s in stores) == sorted(
        (s["path"], s["type"]) for s in host["stores"])
    by_path = dict((s["path"], s) for s in stores)
    der = os.path.join(root, "opt/guichet/conf/Chiffrement_SNEV5.cer")
    assert by_path[der] == {"path": der, "type": "der", "create": True}
    properties = os.path.join(root, "opt/guichet/conf/guichet.properties")
    assert proposal["sne_guichet_config_files"] == [
        {"path": properties, "regexp": r"Chiffrement_SNEV[0-9]+\.cer",
         "replace": "Chiffrement_SNE{{ sne_generation }}.cer"}]
    assert proposal["sne_guichet_search_paths"] == paths
    p12 = os.path.join(root, "opt/guichet/conf/trust.p12")
    assert (p12 in by_path) is host["has_p12"]
    if host["has_p12"]:
        assert "NOT READ" in proposal["reasons"][p12]
    for stray in host["strays"]:
        assert stray not in by_path

    # 2. the operator fills in the vault; the test's harmless update-ca-certificates
    passwords = dict((s["path"], s.get("password")) for s in host["stores"])
    filled = []
    for store in stores:
        store = dict(store)
        if "password" in store:
            var = PLACEHOLDER.match(store["password"]).group(1)
            store["password"] = render(store["password"], **{var: passwords[store["path"]]})
        if store["type"] == "debian":
            store["refresh"] = os.path.join(root, "usr/sbin/update-ca-certificates")
        filled.append(store)

    # 3. the deploy role's keystores run: check mode, for real, then nothing left to do
    params = dict(stores=filled, absent_sha256=retired, all_or_nothing=True,
                  backup_dir=str(tmp_path / "backups"), run_id="proposal",
                  present=[{"name": "sne-chiffrement-v5", "pem": _pem(pki, "chiffrement-v5")},
                           {"name": "sne-ac-v5", "pem": _pem(pki, "ac-v5")}])
    for check_mode, changed in ((True, True), (False, True), (True, False)):
        outcome = _keystores(params, check_mode, monkeypatch)
        assert not outcome.get("failed"), outcome.get("msg")
        assert outcome["changed"] is changed
        assert len(outcome["stores"]) == len(filled)
    # 4. the retire step: the configuration rewrite (as ansible.builtin.replace does it), then
    # exactly the host's strays are left to quarantine, nothing needs a person
    for entry in proposal["sne_guichet_config_files"]:
        with open(entry["path"]) as handle:
            content = handle.read()
        with open(entry["path"], "w") as handle:
            handle.write(re.sub(entry["regexp"], render(entry["replace"]), content))
    with open(properties) as handle:
        assert "Chiffrement_SNEV5.cer" in handle.read()
    from ansible_collections.sne.guichet.plugins.filter.strays import strays

    after = scan(paths, sha256=retired)
    assert strays(after["files"], [s["path"] for s in stores]) == {
        "movable": sorted(host["strays"]), "attention": []}
    assert sorted(p["path"] for p in scan([der])["found"][fps["chiffrement-v5"]]) == [der]
    proc = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", der, "-noout", "-subject"],
                          capture_output=True, text=True, check=True)
    assert "Chiffrement_SNEV5" in proc.stdout


@pytest.mark.parametrize("old, template, pattern, matches", [
    ("Chiffrement_SNEV4.cer", "Chiffrement_SNE{{ sne_generation }}.cer", r"Chiffrement_SNEV[0-9]+\.cer",
     ["Chiffrement_SNEV4.cer", "Chiffrement_SNEV5.cer", "Chiffrement_SNEV12.cer"]),
    ("sne-v4.pem", "sne-{{ sne_generation | lower }}.pem", r"sne\-v[0-9]+\.pem",
     ["sne-v4.pem", "sne-v6.pem"]),
    ("sne.pem", None, None, []),
    ("odd{V4}.pem", None, None, []),
])
def test_templated_name_survives_the_next_rotation(old, template, pattern, matches):
    from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.names import templated_name

    assert templated_name(old) == (template, pattern)
    for name in matches:
        assert re.fullmatch(pattern, name)
    if pattern:
        assert not re.fullmatch(pattern, old.replace(".", "x"))
        rendered = jinja2.Template(template).render(sne_generation="V6")
        assert rendered == old.replace("V4", "V6").replace("v4", "v6")


def run_tool(argv, data=None, environ_update=None):
    done = subprocess.run(argv, input=data, capture_output=True, text=True, check=False,
                          env=dict(os.environ, **(environ_update or {})))
    return done.returncode, done.stdout, done.stderr


@needs_certutil
def test_nss_database_folder_is_proposed_as_an_nss_store(pki, tmp_path):
    """The scan of a host with a real NSS database (certutil -N, V4 added): its folder is
    proposed as a store of type nss with a note; once declared, nothing more is proposed."""
    folder = tmp_path / "etc" / "pki" / "nssdb"
    make_db(folder, None, with_key=False)
    add(folder, "V4", "P,,", os.path.join(pki["dir"], "chiffrement-v4.der"))
    scanned = scan([str(tmp_path)], sha256=CURRENT + RETIRED)
    got = propose(scanned, CURRENT, RETIRED, "V5", host="guichet-042", search_paths=[str(tmp_path)])
    assert {"path": str(folder), "type": "nss"} in got["sne_guichet_stores"], got
    assert "NSS database NOT READ" in got["reasons"][str(folder)]
    assert any("proposed as a store of type nss" in note for note in got["notes"]), got["notes"]
    declared = [{"path": str(folder), "type": "nss"}]
    again = propose(scanned, CURRENT, RETIRED, "V5", host="guichet-042", stores=declared,
                    search_paths=[str(tmp_path)])
    assert [s for s in again["sne_guichet_stores"] if s["type"] == "nss"] == declared
    assert not any("nss" in note for note in again["notes"]), again["notes"]
    # read with certutil: the folder proposed for what it holds
    with open(os.path.join(pki["dir"], "chiffrement-v4.der"), "rb") as handle:
        v4 = fingerprint(handle.read())
    scanned = scan([str(tmp_path)], sha256=[v4], find_tool=shutil.which, run_command=run_tool)
    assert scanned["found"][v4][0]["format"] == "nss"
    got = propose(scanned, CURRENT, [v4], "V5", host="guichet-042", search_paths=[str(tmp_path)])
    assert {"path": str(folder), "type": "nss"} in got["sne_guichet_stores"], got
    assert got["reasons"][str(folder)].startswith("NSS database of 1 certificate"), got["reasons"]
