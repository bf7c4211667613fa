"""Unit tests of the bundle intake (plugins/module_utils/_bundle.py).

Every bundle of the test PKI (tests/pki/make_pki.py) is verified with the policy its
manifest describes; good ones pass, each bad one fails with the check the manifest names.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import subprocess
import zipfile

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._bundle import intake as _bundle
from ansible_collections.sne.guichet.plugins.module_utils._bundle.intake import BundleError, Limits
from ansible_collections.sne.guichet.plugins.module_utils._bundle.policy import Policy, verify_bundle
from ansible_collections.sne.guichet.plugins.module_utils._bundle.run import parse_instant

VALID_AT = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def _read(pki, rel):
    with open(os.path.join(pki["dir"], rel), "rb") as handle:
        return handle.read()


def _bundle_bytes(pki, name):
    return _read(pki, pki["bundles"][name]["file"])


def _anchor_policy(pki, **overrides):
    defaults = pki["verifier_defaults"]
    args = dict(
        trust_anchors=[_read(pki, pki["certificates"][a]["path"]) for a in defaults["trust_anchors"]],
        generation=defaults["generation"],
        retired_sha256=defaults["retired_sha256"],
        valid_at=VALID_AT,
    )
    args.update(overrides)
    return Policy(**args)


def _pin_policy(pki, leaf="chiffrement-v5", authority="ac-v5", **overrides):
    certs = pki["certificates"]
    args = dict(
        certificate_sha256=certs[leaf]["sha256"],
        authority_sha256=[certs[authority]["sha256"]],
        generation="V5",
        retired_sha256=pki["verifier_defaults"]["retired_sha256"],
        valid_at=VALID_AT,
    )
    args.update(overrides)
    return Policy(**args)


def _expect(pki, name):
    entry = pki["bundles"][name]
    return entry.get("expect_default") or entry["expect"]


BUNDLES = [
    "empty", "expired", "garbage-cert", "good-v4", "good-v5", "good-v5-der-only",
    "good-v5-misnamed", "good-v5-pem-only", "good-v5-unlabelled", "good-v5-with-root", "good-v6",
    "leaf-is-ca",
    "no-leaf", "not-a-zip", "not-yet-valid", "oversized", "path-traversal", "private-key",
    "tampered", "too-many-members", "two-leaves", "v4-as-v5", "weak-key", "wrong-authority",
    "wrong-key-usage",
]


def test_manifest_lists_every_bundle_tested(pki):
    assert sorted(pki["bundles"]) == sorted(BUNDLES)


@pytest.mark.parametrize("name", BUNDLES)
def test_each_bundle_with_trust_anchor(pki, name):
    expected = _expect(pki, name)
    entry = pki["bundles"][name]
    data = _bundle_bytes(pki, name)
    if expected == "ok":
        facts = verify_bundle(data, _anchor_policy(pki))
        assert facts["certificate"]["sha256"] == pki["certificates"][entry["leaf"]]["sha256"]
        assert facts["authority"][0]["sha256"] == pki["certificates"][entry["authority"]]["sha256"]
        assert facts["chain"][-1] == pki["certificates"]["root"]["subject"]
        assert facts["trusted_by"] == "trust_anchors"
        assert facts["archive_sha256"] == entry["sha256"]
        warned = entry.get("warn_default") == "generation"
        assert facts["generation_label_matches"] is not warned
        assert len([w for w in facts["warnings"] if "does not name generation V5" in w]) == warned
    else:
        with pytest.raises(BundleError) as info:
            verify_bundle(data, _anchor_policy(pki))
        assert info.value.check == expected, info.value.msg
        assert info.value.msg


@pytest.mark.parametrize("name,generation", [("good-v4", "V4"), ("good-v6", "V6")])
def test_other_generations_pass_when_configured(pki, name, generation):
    facts = verify_bundle(_bundle_bytes(pki, name),
                          _anchor_policy(pki, generation=generation, retired_sha256=[]))
    assert facts["certificate"]["subject"].startswith("CN=Chiffrement_SNE" + generation)


@pytest.mark.parametrize("name", ["good-v5-unlabelled", "good-v6"])
def test_generation_pattern_cases_of_the_manifest(pki, name):
    for case in pki["bundles"][name]["generation_pattern_cases"]:
        policy = _anchor_policy(pki, generation_pattern=case["generation_pattern"])
        expected = case["expect"]
        if expected == "ok":
            assert verify_bundle(_bundle_bytes(pki, name), policy)["warnings"] == []
        else:
            with pytest.raises(BundleError) as info:
                verify_bundle(_bundle_bytes(pki, name), policy)
            assert info.value.check == expected


# ----------------------------------------------------- generation: a label, not a proof

def _unlabelled_pins(pki, **overrides):
    return _pin_policy(pki, leaf="chiffrement-v5-unlabelled", **overrides)


def test_unlabelled_v5_authenticated_by_pins_is_accepted_with_a_warning(pki):
    facts = verify_bundle(_bundle_bytes(pki, "good-v5-unlabelled"), _unlabelled_pins(pki))
    unlabelled = pki["certificates"]["chiffrement-v5-unlabelled"]
    assert facts["certificate"]["sha256"] == unlabelled["sha256"]
    assert facts["certificate"]["subject"] == "CN=Chiffrement SNE,OU=SNE,O=Ministere du Logement (test),C=FR"
    assert facts["trusted_by"] == "authority_sha256"
    assert facts["generation_label_matches"] is False
    assert facts["warnings"] == [
        "the common name of the encryption certificate %s does not name generation V5; accepted "
        "all the same, since pins or trust anchors authenticate a bundle, not its label (set "
        "generation_pattern to require a subject)" % unlabelled["subject"]]


def test_unlabelled_v5_refused_by_a_pattern_that_does_not_match(pki):
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5-unlabelled"),
                      _unlabelled_pins(pki, generation_pattern="Chiffrement_SNEV5"))
    assert info.value.check == "generation"
    subject = pki["certificates"]["chiffrement-v5-unlabelled"]["subject"]
    assert info.value.msg == ("the encryption certificate %s is not generation V5: its subject does "
                              "not match generation_pattern 'Chiffrement_SNEV5'" % subject)
    assert info.value.facts["certificate"]["subject"] == subject  # reported with the refusal


def test_pattern_without_generation_names_only_the_pattern(pki):
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5-unlabelled"),
                      _unlabelled_pins(pki, generation=None, generation_pattern="SNEV5$"))
    assert info.value.check == "generation"
    assert "has a subject that does not match generation_pattern 'SNEV5$'" in info.value.msg


@pytest.mark.parametrize("pattern", [r"^CN=Chiffrement SNE,OU=SNE,", r"OU=SNE\b", r"(?i)chiffrement sne"])
def test_unlabelled_v5_accepted_by_a_matching_pattern_without_warning(pki, pattern):
    facts = verify_bundle(_bundle_bytes(pki, "good-v5-unlabelled"),
                          _unlabelled_pins(pki, generation_pattern=pattern))
    assert facts["warnings"] == []
    assert facts["generation_label_matches"] is False  # still reported, but the pattern decides


def test_pattern_is_searched_in_the_whole_subject(pki):
    whole = r"^CN=Chiffrement_SNEV5,O=Ministere du Logement \(test\),C=FR$"
    facts = verify_bundle(_bundle_bytes(pki, "good-v5"), _pin_policy(pki, generation_pattern=whole))
    assert facts["generation_label_matches"] is True and facts["warnings"] == []
    with pytest.raises(BundleError) as info:  # searched as written: case matters
        verify_bundle(_bundle_bytes(pki, "good-v5"), _pin_policy(pki, generation_pattern="chiffrement_snev5"))
    assert info.value.check == "generation"


@pytest.mark.parametrize("pattern", ["Chiffrement_SNEV(5", "[V5", "*V5"])
def test_bad_generation_pattern_is_a_clear_argument_error(pattern):
    with pytest.raises(BundleError) as info:
        Policy(generation="V5", generation_pattern=pattern)
    assert info.value.check == "arguments"
    assert info.value.msg.startswith("generation_pattern %r is not a valid Python regular expression: "
                                     % pattern)


def test_no_generation_no_label_fact(pki):
    facts = verify_bundle(_bundle_bytes(pki, "good-v5-unlabelled"), _unlabelled_pins(pki, generation=None))
    assert facts["generation_label_matches"] is None and facts["warnings"] == []


def test_label_never_outweighs_the_pins(pki):
    """Pins decide genuineness: V6 (named V6) under V5 pins is refused by pin, not by its label,
    and the unlabelled V5 under the V5 certificate pin is refused by pin too."""
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v6"), _pin_policy(pki))
    assert info.value.check == "pin"
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5-unlabelled"), _pin_policy(pki))
    assert info.value.check == "pin"


def test_retired_still_refused_whatever_the_label(pki):
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "v4-as-v5"), _pin_policy(pki, generation_pattern="V4"))
    assert info.value.check == "retired"


def test_pins_alone_authenticate(pki):
    facts = verify_bundle(_bundle_bytes(pki, "good-v5"), _pin_policy(pki))
    assert facts["trusted_by"] == "authority_sha256"
    assert facts["chain_sha256"] == [pki["certificates"]["chiffrement-v5"]["sha256"],
                                     pki["certificates"]["ac-v5"]["sha256"]]


def test_pins_accept_any_case_and_separator(pki):
    leaf = pki["certificates"]["chiffrement-v5"]["sha256"].replace(":", "").lower()
    ca = "sha256 Fingerprint=" + pki["certificates"]["ac-v5"]["sha256"]
    verify_bundle(_bundle_bytes(pki, "good-v5"),
                  _pin_policy(pki, certificate_sha256=leaf, authority_sha256=[ca]))


@pytest.mark.parametrize("name,check", [
    ("wrong-authority", "pin"), ("tampered", "pin"), ("v4-as-v5", "retired"),
    ("expired", "validity"), ("wrong-key-usage", "key_usage"),
])
def test_bad_bundles_fail_with_pins_too(pki, name, check):
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, name), _pin_policy(pki))
    assert info.value.check == check


def test_tampered_signature_fails_chain_even_when_its_fingerprint_is_pinned(pki):
    tampered = pki["certificates"]["chiffrement-v5-tampered"]["sha256"]
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "tampered"), _pin_policy(pki, certificate_sha256=tampered))
    assert info.value.check == "chain"


def test_wrong_authority_fails_even_if_its_own_fingerprint_is_pinned_with_a_root(pki):
    impostor = pki["certificates"]["ac-v5-impostor"]["sha256"]
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "wrong-authority"),
                      _anchor_policy(pki, authority_sha256=[impostor]))
    assert info.value.check == "chain"


def test_fail_closed_without_pin_or_anchor_prints_fingerprints(pki):
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5"), Policy(generation="V5", valid_at=VALID_AT))
    assert info.value.check == "trust"
    assert pki["certificates"]["chiffrement-v5"]["sha256"] in info.value.msg
    assert pki["certificates"]["ac-v5"]["sha256"] in info.value.msg


def test_certificate_pin_alone_is_not_enough(pki):
    policy = Policy(certificate_sha256=pki["certificates"]["chiffrement-v5"]["sha256"],
                    valid_at=VALID_AT)
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5"), policy)
    assert info.value.check == "trust"
    assert "authority" in info.value.msg


def test_wrong_certificate_pin(pki):
    other = pki["certificates"]["chiffrement-v6"]["sha256"]
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5"), _pin_policy(pki, certificate_sha256=other))
    assert info.value.check == "pin"


def test_retired_authority_refused(pki):
    retired = [pki["certificates"]["ac-v5"]["sha256"]]
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5"), _anchor_policy(pki, retired_sha256=retired))
    assert info.value.check == "retired"


def test_valid_at_in_the_past_and_future(pki):
    long_ago = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "good-v5"), _anchor_policy(pki, valid_at=long_ago))
    assert info.value.check == "validity"
    expired_bundle_time = datetime.datetime(2015, 6, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(BundleError) as info:
        verify_bundle(_bundle_bytes(pki, "expired"), _anchor_policy(pki, valid_at=expired_bundle_time))
    assert info.value.check == "validity"  # the authority was not valid yet in 2015


def test_near_expiry_warns(pki):
    facts = verify_bundle(_bundle_bytes(pki, "good-v5"), _anchor_policy(pki, min_days_remaining=10000))
    assert any("expires in" in w for w in facts["warnings"])
    facts = verify_bundle(_bundle_bytes(pki, "good-v5"), _anchor_policy(pki))
    assert facts["warnings"] == []


def test_returned_facts_match_openssl(pki):
    facts = verify_bundle(_bundle_bytes(pki, "good-v5"), _anchor_policy(pki))
    pem = facts["certificate"]["pem"].encode("ascii")
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-serial"],
                         input=pem, capture_output=True, check=True).stdout.decode()
    assert "sha256 Fingerprint=%s" % facts["certificate"]["sha256"] in out
    assert "serial=%s" % facts["certificate"]["serial"] in out
    cert = facts["certificate"]
    assert cert["key_usage"] == ["key_encipherment"]
    assert cert["is_ca"] is False
    assert cert["subject"] == pki["certificates"]["chiffrement-v5"]["subject"]
    assert cert["not_after"] == pki["certificates"]["chiffrement-v5"]["not_after"]
    assert "Installation_certificat_SNE.pdf" in facts["documents"]


def test_bundle_with_root_lists_authorities_issuing_first(pki):
    facts = verify_bundle(_bundle_bytes(pki, "good-v5-with-root"), _anchor_policy(pki))
    assert [a["sha256"] for a in facts["authority"]] == [pki["certificates"]["ac-v5"]["sha256"],
                                                         pki["certificates"]["root"]["sha256"]]


# ---------------------------------------------------------------- archive checks

def _zip(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../x", "/etc/evil", "a/../../b", "C:/x", "a\\..\\..\\b", "..\\x"])
def test_unsafe_member_names(name):
    with pytest.raises(BundleError) as info:
        _bundle.read_zip(_zip([("ok.txt", b"x"), (name, b"y")]), Limits())
    assert info.value.check == "zip_path"


def test_symlink_member_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo("link.cer")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError) as err:
        _bundle.read_zip(buf.getvalue(), Limits())
    assert err.value.check == "zip_path"


def test_limits_each_enforced():
    many = _zip([("f%d.txt" % i, b"x") for i in range(10)])
    with pytest.raises(BundleError, match="members"):
        _bundle.read_zip(many, Limits(max_members=5))
    big = _zip([("big.txt", b"a" * 5000)])
    with pytest.raises(BundleError, match="declares"):
        _bundle.read_zip(big, Limits(max_member_size=4000))
    ratio = _zip([("r.txt", b"\0" * 100000)], zipfile.ZIP_DEFLATED)
    with pytest.raises(BundleError, match="compression ratio"):
        _bundle.read_zip(ratio, Limits(max_ratio=50))
    total = _zip([("a.txt", b"a" * 3000), ("b.txt", b"b" * 3000)])
    with pytest.raises(BundleError, match="inflates past"):
        _bundle.read_zip(total, Limits(max_total_size=5000))
    with pytest.raises(BundleError, match="more than the limit"):
        _bundle.read_zip(total, Limits(max_archive_size=100))


def test_lying_declared_size_is_caught_while_reading():
    data = bytearray(_zip([("a.txt", b"a" * 3000)]))
    # Make both headers declare 10 bytes: reading must still stop at the limit.
    central = data.rfind(b"PK\x01\x02")
    local = data.find(b"PK\x03\x04")
    for offset in (local + 22, central + 24):
        data[offset:offset + 4] = (10).to_bytes(4, "little")
    with pytest.raises(BundleError) as info:
        _bundle.read_zip(bytes(data), Limits(max_member_size=1000))
    assert info.value.check in ("zip_limits", "zip_format")


def test_encrypted_member_refused():
    data = bytearray(_zip([("a.cer", b"abc")]))
    central = data.rfind(b"PK\x01\x02")
    local = data.find(b"PK\x03\x04")
    data[local + 6] |= 1
    data[central + 8] |= 1
    with pytest.raises(BundleError) as info:
        _bundle.read_zip(bytes(data), Limits())
    assert info.value.check == "zip_format"


def test_documents_only_bundle_has_no_leaf():
    with pytest.raises(BundleError) as info:
        verify_bundle(_zip([("notice.txt", b"hello")]), Policy(valid_at=VALID_AT))
    assert info.value.check == "leaf_count"


@pytest.mark.parametrize("label", ["RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY"])
def test_any_private_key_block_refused(label):
    pem = ("-----BEGIN %s-----\nAAAA\n-----END %s-----\n" % (label, label)).encode()
    with pytest.raises(BundleError) as info:
        verify_bundle(_zip([("k.txt", pem)]), Policy(valid_at=VALID_AT))
    assert info.value.check == "private_key"


def test_der_private_key_refused(pki):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(_read(pki, "chiffrement-v5.key"), password=None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with pytest.raises(BundleError) as info:
        verify_bundle(_zip([("blob.bin", der)]), Policy(valid_at=VALID_AT))
    assert info.value.check == "private_key"


def test_pkcs7_member_is_read(pki):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    certs = [x509.load_pem_x509_certificate(_read(pki, pki["certificates"][c]["path"]))
             for c in ("chiffrement-v5", "ac-v5")]
    p7 = pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
    facts = verify_bundle(_zip([("chain.p7b", p7)]), _anchor_policy(pki))
    assert facts["members"] == ["chain.p7b"]


# ------------------------------------------------------------------- checksum

def test_checksum_forms():
    data = b"bundle"
    digest = hashlib.sha256(data).hexdigest()
    _bundle.check_checksum(data, digest)
    _bundle.check_checksum(data, "sha256:" + digest.upper())
    _bundle.check_checksum(data, "sha512:" + hashlib.sha512(data).hexdigest())
    with pytest.raises(BundleError, match="expected"):
        _bundle.check_checksum(data, "sha256:" + "0" * 64)
    with pytest.raises(BundleError, match="unsupported"):
        _bundle.check_checksum(data, "md5:" + hashlib.md5(data).hexdigest())


def test_checksum_checked_before_anything_else():
    with pytest.raises(BundleError) as info:
        verify_bundle(b"not a zip", Policy(checksum="sha256:" + "0" * 64))
    assert info.value.check == "checksum"


# --------------------------------------------------------------------- instants

@pytest.mark.parametrize("text,expected", [
    ("2016-01-07T09:00:00Z", datetime.datetime(2016, 1, 7, 9, tzinfo=datetime.timezone.utc)),
    ("2016-01-07T10:00:00+01:00", datetime.datetime(2016, 1, 7, 9, tzinfo=datetime.timezone.utc)),
    ("2016-01-07 09:00:00", datetime.datetime(2016, 1, 7, 9, tzinfo=datetime.timezone.utc)),
])
def test_parse_instant(text, expected):
    assert parse_instant(text) == expected


def test_parse_instant_now_and_garbage():
    # "now" is the clock read during the call: between two readings around it, however slow.
    before = datetime.datetime.now(datetime.timezone.utc)
    now = parse_instant("now")
    after = datetime.datetime.now(datetime.timezone.utc)
    assert before <= now <= after and now.tzinfo is not None
    assert before <= parse_instant("  NOW ") <= datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(ValueError):
        parse_instant("yesterday")
