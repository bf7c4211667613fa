"""Filters of the editors' kit: sne.guichet.simulator_config and sne.guichet.simulated_rotation,
over the real test PKI manifest (the ``pki`` fixture) and checked against its certificates."""

from __future__ import annotations

import hashlib
import os
import zipfile

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.sne.guichet.plugins.filter.simulate import simulated_rotation, simulator_config


def test_the_configuration_answers_current_and_drops_revoked(pki):
    config = simulator_config(pki, current="v6", revoked=["V4", "V5"], transports=["http", "folder"],
                              http_port=8080, delay_seconds=2)
    assert config["current"] == {"generation": "V6", "certificate": "pki/chiffrement-v6.pem",
                                 "key": "pki/chiffrement-v6.key"}
    assert [r["generation"] for r in config["revoked"]] == ["V4", "V5"]
    assert config["transports"]["http"] == {"port": 8080}
    assert "folder" in config["transports"] and "smtp" not in config["transports"]
    assert config["delay_seconds"] == 2.0
    for entry in [config["current"]] + config["revoked"]:  # every path names a real file of the PKI
        for key in ("certificate", "key"):
            assert os.path.isfile(os.path.join(pki["dir"], entry[key][len("pki/"):]))


@pytest.mark.parametrize("current, revoked, transports, message", [
    ("V5", ["V5"], None, "both current and revoked"),
    ("V5", ["V4", "V4"], None, "listed twice"),
    ("V7", [], None, "unknown generation"),
    ("V5", ["V3"], None, "unknown generation"),
    ("V5", [], ["http", "x400"], "unknown transport"),
])
def test_bad_choices_are_refused(pki, current, revoked, transports, message):
    with pytest.raises(AnsibleFilterError, match=message):
        simulator_config(pki, current=current, revoked=revoked, transports=transports)


def test_a_manifest_of_something_else_is_refused():
    with pytest.raises(AnsibleFilterError, match="not a test PKI"):
        simulator_config({"certificates": {}}, current="V5")


def test_the_rotation_pins_the_bundle_it_names(pki):
    sim = {"pid": 1, "http": {"url": "http://127.0.0.1:4000"}}
    got = simulated_rotation(pki, pki["dir"], sim, current="V5", revoked=["V4"])
    assert got["sne_generation"] == "V5"
    assert got["sne_guichet_async_http"] == {"url": "http://127.0.0.1:4000"}
    assert got["sne_async_check_enabled"] is True and got["sne_guichet_async_transport"] == "http"
    with open(got["sne_bundle_src"], "rb") as handle:
        data = handle.read()
    assert got["sne_bundle_checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    # The pins are those of the certificates the bundle holds (read here, not from the manifest).
    with zipfile.ZipFile(got["sne_bundle_src"]) as archive:
        fingerprints = set()
        for name in archive.namelist():
            if name.endswith(".pdf"):  # the ministry's installation notice
                continue
            raw = archive.read(name)
            pem = raw.startswith(b"-----")
            cert = x509.load_pem_x509_certificate(raw) if pem else x509.load_der_x509_certificate(raw)
            digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
            fingerprints.add(":".join("%02X" % b for b in digest))
    assert got["sne_certificate_sha256"] in fingerprints
    assert set(got["sne_authority_sha256"]) <= fingerprints
    retired = {pki["certificates"][i]["sha256"] for i in ("chiffrement-v4", "ac-v4")}
    assert set(got["sne_retired_sha256"]) == retired and not retired & fingerprints


def test_no_simulator_no_variables(pki):
    with pytest.raises(AnsibleFilterError, match="is it running"):
        simulated_rotation(pki, pki["dir"], {"pid": 1}, current="V5", revoked=["V4"])


def test_the_rotation_proves_revocation_with_the_kit_crls(pki):
    """What the kit writes makes the bundle module prove V5 not revoked and V4 revoked."""
    import datetime

    from ansible_collections.sne.guichet.plugins.module_utils._bundle.policy import Policy, verify_bundle
    from ansible_collections.sne.guichet.plugins.module_utils._bundle.run import read_anchors, read_crls

    sim = {"pid": 1, "http": {"url": "http://127.0.0.1:4000"}}
    got = simulated_rotation(pki, pki["dir"], sim, current="V5", revoked=["V4"])
    assert got["sne_bundle_crls"] == ["%s/crls/ac-v5.crl" % pki["dir"], "%s/crls/ac-v4.pem" % pki["dir"]]
    assert got["sne_retired_generation"] == "V4" and got["sne_require_retired_revoked"] is True
    subjects = [x509.load_pem_x509_certificate(p.encode()).subject.rfc4514_string()
                for p in got["sne_retired_certificates"]]
    assert subjects == [pki["certificates"][i]["subject"] for i in ("chiffrement-v4", "ac-v4")]
    policy = Policy(certificate_sha256=got["sne_certificate_sha256"],
                    authority_sha256=got["sne_authority_sha256"], retired_sha256=got["sne_retired_sha256"],
                    generation=got["sne_generation"],
                    valid_at=datetime.datetime.now(datetime.timezone.utc),  # the kit verifies at "now"
                    crls=read_crls(None, got["sne_bundle_crls"], 10),
                    retired_certificates=read_anchors(got["sne_retired_certificates"]),
                    retired_generation=got["sne_retired_generation"],
                    require_retired_revoked=got["sne_require_retired_revoked"])
    with open(got["sne_bundle_src"], "rb") as handle:
        revocation = verify_bundle(handle.read(), policy)["revocation"]
    assert [(e["generation"], e["revoked"]) for e in revocation] == [("V5", False), ("V4", True)]
    assert revocation[1]["revoked_at"] == "2016-01-07T08:00:00+00:00"


def test_revocation_required_only_where_a_crl_proves_it(pki):
    sim = {"pid": 1, "http": {"url": "http://127.0.0.1:4000"}}
    got = simulated_rotation(pki, pki["dir"], sim, current="V6", revoked=["V4", "V5"])
    # AC SNE V5's CRL does not revoke V5: not given, and revocation not required.
    assert got["sne_bundle_crls"] == ["%s/crls/ac-v6.crl" % pki["dir"], "%s/crls/ac-v4.pem" % pki["dir"]]
    assert got["sne_require_retired_revoked"] is False and "sne_retired_generation" not in got
    assert len(got["sne_retired_certificates"]) == 4
