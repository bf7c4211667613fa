"""Tests of the test PKI generator (roles/simulate/files/make_pki.py), with the committed test keys.

Besides "the files are what the manifest says", ``reference_check`` below is a tiny
reference bundle verifier following ``manifest["check_order"]``: it proves that every bundle's
``expect`` is the FIRST check that bundle fails, i.e. that the defects are really there and
that no bundle carries an extra, earlier defect by accident.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKE_PKI = os.path.join(ROOT, "roles", "simulate", "files", "make_pki.py")
TEST_KEYS = os.path.join(ROOT, "tests", "pki", "keys")
VALID_AT = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


def _load_make_pki() -> Any:
    spec = importlib.util.spec_from_file_location("make_pki", MAKE_PKI)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_pki"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


make_pki = _load_make_pki()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Tuple[str, Dict[str, Any]]:
    outdir = str(tmp_path_factory.mktemp("pki"))
    return outdir, make_pki.build(outdir, TEST_KEYS)


def cert(pki: Tuple[str, Dict[str, Any]], ident: str) -> x509.Certificate:
    outdir, manifest = pki
    with open(os.path.join(outdir, manifest["certificates"][ident]["path"]), "rb") as fh:
        return x509.load_pem_x509_certificate(fh.read())


def path(pki: Tuple[str, Dict[str, Any]], ident: str) -> str:
    return os.path.join(pki[0], pki[1]["certificates"][ident]["path"])


def verifier(anchors: Iterable[x509.Certificate], at: dt.datetime = VALID_AT) -> Any:
    """The exact call the bundle verifier uses (client verifier: the leaves have no SAN)."""
    return (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(at)
        .extension_policies(
            ee_policy=ExtensionPolicy.permit_all(), ca_policy=ExtensionPolicy.webpki_defaults_ca()
        )
        .build_client_verifier()
    )


def openssl_verify(pki: Tuple[str, Dict[str, Any]], leaf: str, authority: str) -> subprocess.CompletedProcess:
    assert OPENSSL is not None
    attime = str(int(VALID_AT.timestamp()))
    return subprocess.run(
        [OPENSSL, "verify", "-attime", attime, "-CAfile", path(pki, "root"),
         "-untrusted", path(pki, authority), path(pki, leaf)],
        capture_output=True, text=True, check=False,
    )


def all_files(folder: str) -> Dict[str, bytes]:
    out = {}
    for base, _dirs, files in os.walk(folder):
        for name in files:
            full = os.path.join(base, name)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, folder)] = fh.read()
    return out


# ------------------------------------------------------------------------------- determinism
def test_two_builds_are_byte_identical(tmp_path: Any) -> None:
    # How long a build takes is measured by benchmarks/make_pki.py, not asserted here.
    first = make_pki.build(str(tmp_path / "a"), TEST_KEYS)
    second = make_pki.build(str(tmp_path / "b"), TEST_KEYS)
    assert first == second
    files_a, files_b = all_files(str(tmp_path / "a")), all_files(str(tmp_path / "b"))
    assert sorted(files_a) == sorted(files_b)
    assert [name for name in files_a if files_a[name] != files_b[name]] == []


def test_cli_writes_the_same_manifest(tmp_path: Any, pki: Tuple[str, Dict[str, Any]]) -> None:
    subprocess.run([sys.executable, MAKE_PKI, str(tmp_path), "--keys", TEST_KEYS],
                   check=True, capture_output=True)
    with open(tmp_path / "manifest.json", "rb") as a, open(os.path.join(pki[0], "manifest.json"), "rb") as b:
        assert a.read() == b.read()


def test_without_a_keys_folder_fresh_keys_are_made_beside_the_pki(
        tmp_path: Any, pki: Tuple[str, Dict[str, Any]]) -> None:
    # What the editors' kit does (no test key ships with the collection): keys generated into
    # OUTDIR/keys, private to the user, then reused by the next build of the same folder.
    out = tmp_path / "kit"
    subprocess.run([sys.executable, MAKE_PKI, str(out)], check=True, capture_output=True)
    keys = out / "keys"
    assert sorted(p.name for p in keys.iterdir()) == sorted(k + ".pem" for k in make_pki.KEY_SIZES)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in keys.iterdir()} == {0o600}
    first = json.loads((out / "manifest.json").read_text())
    committed = pki[1]["certificates"]["chiffrement-v5"]["sha256"]
    assert first["certificates"]["chiffrement-v5"]["sha256"] != committed
    subprocess.run([sys.executable, MAKE_PKI, str(out)], check=True, capture_output=True)
    assert json.loads((out / "manifest.json").read_text()) == first  # same keys, same PKI


# ------------------------------------------------------------------------------ certificates
def test_every_certificate_parses_and_matches_the_manifest(pki: Tuple[str, Dict[str, Any]]) -> None:
    outdir, manifest = pki
    assert len(manifest["certificates"]) == 17
    for ident, entry in manifest["certificates"].items():
        with open(os.path.join(outdir, entry["der"]), "rb") as fh:
            der = fh.read()
        pem_cert = cert(pki, ident)
        assert pem_cert.public_bytes(serialization.Encoding.DER) == der
        assert x509.load_der_x509_certificate(der).serial_number == entry["serial"]
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", entry["sha256"])
        assert entry["sha256"].replace(":", "").lower() == hashlib.sha256(der).hexdigest()
        assert pem_cert.subject.rfc4514_string() == entry["subject"]
        assert pem_cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "FR"
        org = pem_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        assert org == "Ministere du Logement (test)"
    serials = [e["serial"] for i, e in manifest["certificates"].items() if i != "chiffrement-v5-tampered"]
    assert len(set(serials)) == len(serials)  # the tampered copy shares the good V5 serial


@needs_openssl
@pytest.mark.parametrize(
    "ident", ["root", "ac-v5", "chiffrement-v5", "chiffrement-v4", "chiffrement-v5-tampered"]
)
def test_openssl_fingerprint_equals_manifest(pki: Tuple[str, Dict[str, Any]], ident: str) -> None:
    assert OPENSSL is not None
    out = subprocess.run([OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in", path(pki, ident)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().split("=", 1)[1] == pki[1]["certificates"][ident]["sha256"]


@needs_openssl
@pytest.mark.parametrize("gen", [4, 5, 6])
def test_openssl_verifies_good_leaves(pki: Tuple[str, Dict[str, Any]], gen: int) -> None:
    result = openssl_verify(pki, f"chiffrement-v{gen}", f"ac-v{gen}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


@needs_openssl
@pytest.mark.parametrize(("leaf", "authority", "error"), [
    ("chiffrement-v5-tampered", "ac-v5", "certificate signature failure"),
    ("chiffrement-v5-impostor", "ac-v5-impostor", "self-signed certificate in certificate chain"),
    ("chiffrement-v5-expired", "ac-v5", "certificate has expired"),
    ("chiffrement-v5-not-yet-valid", "ac-v5", "certificate is not yet valid"),
    ("chiffrement-v5", "ac-v4", "unable to get local issuer certificate"),
])
def test_openssl_rejects_bad_leaves(pki: Tuple[str, Dict[str, Any]], leaf: str, authority: str,
                                    error: str) -> None:
    result = openssl_verify(pki, leaf, authority)
    assert result.returncode != 0
    assert error in result.stdout + result.stderr


def test_ca_certificates_follow_the_webpki_ca_profile(pki: Tuple[str, Dict[str, Any]]) -> None:
    for ident in ("root", "ac-v4", "ac-v5", "ac-v6", "ac-v5-impostor"):
        c = cert(pki, ident)
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca
        ku = c.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        ski = c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        assert c.signature_hash_algorithm is not None and c.signature_hash_algorithm.name == "sha256"
        if ident in ("root", "ac-v5-impostor"):
            assert c.issuer == c.subject
            assert c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier \
                == ski.digest
    assert cert(pki, "ac-v5-impostor").subject == cert(pki, "ac-v5").subject
    assert cert(pki, "ac-v5-impostor").public_key() != cert(pki, "ac-v5").public_key()
    assert cert(pki, "root").not_valid_after_utc == dt.datetime(2050, 1, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("gen", [4, 5, 6])
def test_encryption_certificate_profile(pki: Tuple[str, Dict[str, Any]], gen: int) -> None:
    leaf, authority = cert(pki, f"chiffrement-v{gen}"), cert(pki, f"ac-v{gen}")
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"Chiffrement_SNEV{gen}"
    assert leaf.issuer == authority.subject
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value == make_pki.LEAF_KU  # keyEncipherment only
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = authority.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    # the simulator's private key matches the certificate
    with open(os.path.join(pki[0], f"chiffrement-v{gen}.key"), "rb") as fh:
        private = serialization.load_pem_private_key(fh.read(), password=None)
    assert private.public_key() == key


@pytest.mark.parametrize("gen", [4, 5, 6])
def test_cryptography_client_verifier_accepts_good_leaves(pki: Tuple[str, Dict[str, Any]], gen: int) -> None:
    chain = verifier([cert(pki, "root")]).verify(cert(pki, f"chiffrement-v{gen}"), [cert(pki, f"ac-v{gen}")])
    assert [c.subject for c in chain.chain] == [
        cert(pki, f"chiffrement-v{gen}").subject, cert(pki, f"ac-v{gen}").subject, cert(pki, "root").subject]


@pytest.mark.parametrize(("leaf", "authority"), [
    ("chiffrement-v5-tampered", "ac-v5"), ("chiffrement-v5-impostor", "ac-v5-impostor"),
    ("chiffrement-v5-expired", "ac-v5"), ("chiffrement-v5-not-yet-valid", "ac-v5"),
])
def test_cryptography_client_verifier_rejects_bad_leaves(pki: Tuple[str, Dict[str, Any]], leaf: str,
                                                         authority: str) -> None:
    with pytest.raises(VerificationError):
        verifier([cert(pki, "root")]).verify(cert(pki, leaf), [cert(pki, authority)])


def test_default_client_verifier_wants_a_san(pki: Tuple[str, Dict[str, Any]]) -> None:
    """Why the bundle verifier must pass extension_policies(ee_policy=permit_all()...)."""
    plain = PolicyBuilder().store(Store([cert(pki, "root")])).time(VALID_AT).build_client_verifier()
    with pytest.raises(VerificationError, match="2.5.29.17"):
        plain.verify(cert(pki, "chiffrement-v5"), [cert(pki, "ac-v5")])


def test_only_the_cdp_certificate_names_a_distribution_point(pki: Tuple[str, Dict[str, Any]]) -> None:
    outdir, manifest = pki
    for ident in manifest["certificates"]:
        has = any(e.oid == ExtensionOID.CRL_DISTRIBUTION_POINTS for e in cert(pki, ident).extensions)
        assert has is (ident == "chiffrement-v5-cdp"), ident
    cdp, v5 = cert(pki, "chiffrement-v5-cdp"), cert(pki, "chiffrement-v5")
    points = cdp.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name] == [manifest["crl_distribution_point"]]
    assert (cdp.subject, cdp.issuer, cdp.public_key()) == (v5.subject, v5.issuer, v5.public_key())


# --------------------------------------------------------------------------------------- CRLs
def _openssl_crl(pki: Tuple[str, Dict[str, Any]], name: str, form: str, *args: str) -> str:
    assert OPENSSL is not None
    entry = pki[1]["crls"][name]
    run = subprocess.run([OPENSSL, "crl", "-noout", "-inform", form.upper(), "-in",
                          os.path.join(pki[0], entry[form]), *args],
                         capture_output=True, text=True, check=False)
    return run.stdout + run.stderr


@needs_openssl
@pytest.mark.parametrize("form", ["der", "pem"])
def test_crls_are_what_the_manifest_says_by_openssl(pki: Tuple[str, Dict[str, Any]], form: str) -> None:
    """openssl reads every CRL (DER and PEM), verifies it against the key the manifest names,
    and lists the serials the manifest says it revokes."""
    outdir, manifest = pki
    signer = {"ac-v4": "ac-v4", "ac-v5": "ac-v5", "ac-v6": "ac-v6", "wrong-ca": "ac-v5-impostor"}
    for name, entry in manifest["crls"].items():
        if name == "garbage":
            assert "unable to load crl" in _openssl_crl(pki, name, form).lower()
            continue
        text = _openssl_crl(pki, name, form, "-text")
        assert "Issuer: C = FR, O = Ministere du Logement (test), CN = " in text
        assert [m.upper() for m in re.findall(r"Serial Number: ([0-9A-Fa-f]+)", text)] == \
            [r["serial_hex"] for r in entry["revoked"]]
        own = _openssl_crl(pki, name, form, "-CAfile", path(pki, entry["issuer_certificate"]))
        assert ("verify OK" in own) is (entry["signed_by"] == entry["issuer_certificate"]), name
        signed = _openssl_crl(pki, name, form, "-CAfile", path(pki, signer[entry["signed_by"]]))
        assert "verify OK" in signed, name
        if entry["expect"] == "crl_extension":
            assert "1.3.6.1.4.1.32473.1.1: critical" in text


def test_crl_dates_and_the_v4_revocation(pki: Tuple[str, Dict[str, Any]]) -> None:
    crls = pki[1]["crls"]
    assert crls["ac-v4"]["revoked"] == [{"certificate": "chiffrement-v4", "serial": 0x5E1004,
                                         "serial_hex": "5E1004", "revoked_at": "2016-01-07T08:00:00Z",
                                         "reason": "superseded"}]
    assert [r["certificate"] for r in crls["ac-v5-revokes-v5"]["revoked"]] == ["chiffrement-v5"]
    assert "chiffrement-v5" not in [r["certificate"] for r in crls["ac-v5"]["revoked"]]
    at = VALID_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, entry in crls.items():
        if name == "garbage":
            continue
        current = entry["this_update"] <= at < entry["next_update"]
        assert current is (name not in ("ac-v5-expired", "ac-v5-not-yet-valid")), name
        assert entry["expect"] != "crl_stale" or not current


# ----------------------------------------------------------------------------------- bundles
def members(pki: Tuple[str, Dict[str, Any]], bundle: str) -> Dict[str, bytes]:
    with zipfile.ZipFile(os.path.join(pki[0], pki[1]["bundles"][bundle]["file"])) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist() if info.file_size < 1 << 20}


def test_bundle_files_and_checksums(pki: Tuple[str, Dict[str, Any]]) -> None:
    outdir, manifest = pki
    assert len(manifest["bundles"]) == 25
    for name, entry in manifest["bundles"].items():
        assert entry["file"] == f"bundles/{name}.zip"
        with open(os.path.join(outdir, entry["file"]), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == entry["sha256"]
        assert entry["expect"] == "ok" or entry["expect"] in manifest["check_order"]
        if zipfile.is_zipfile(os.path.join(outdir, entry["file"])):
            with zipfile.ZipFile(os.path.join(outdir, entry["file"])) as zf:
                assert zf.namelist() == entry["members"]
                assert {i.date_time for i in zf.infolist()} <= {make_pki.ZIP_DATE_TIME}
    assert manifest["bundles"]["good-v4"]["expect_default"] == "retired"
    assert manifest["bundles"]["good-v6"]["warn_default"] == "generation"
    assert manifest["bundles"]["good-v5-unlabelled"]["warn_default"] == "generation"
    assert manifest["bundles"]["good-v5-unlabelled"]["generation_pattern_cases"] == [
        {"generation_pattern": "Chiffrement_SNEV5", "expect": "generation"},
        {"generation_pattern": "^CN=Chiffrement SNE,OU=SNE,", "expect": "ok"}]


def test_unlabelled_v5_is_the_good_v5_but_for_its_subject(pki: Tuple[str, Dict[str, Any]]) -> None:
    """Same key, authority, validity and extensions as chiffrement-v5; only the subject
    (no generation in the CN, an OU) and the serial differ."""
    good, unlabelled = cert(pki, "chiffrement-v5"), cert(pki, "chiffrement-v5-unlabelled")
    assert unlabelled.subject.rfc4514_string() == \
        "CN=Chiffrement SNE,OU=SNE,O=Ministere du Logement (test),C=FR"
    assert unlabelled.serial_number != good.serial_number
    assert unlabelled.public_key() == good.public_key()
    assert unlabelled.issuer == good.issuer
    assert (unlabelled.not_valid_before_utc, unlabelled.not_valid_after_utc) == \
        (good.not_valid_before_utc, good.not_valid_after_utc)
    assert list(unlabelled.extensions) == list(good.extensions)
    chain = verifier([cert(pki, "root")]).verify(unlabelled, [cert(pki, "ac-v5")])
    assert [c.subject for c in chain.chain] == [unlabelled.subject, good.issuer, cert(pki, "root").subject]
    got = members(pki, "good-v5-unlabelled")
    assert list(got) == list(members(pki, "good-v5"))
    assert x509.load_der_x509_certificate(got["Chiffrement_SNEV5.cer"]) == unlabelled


def test_good_v5_is_shaped_like_the_official_bundle(pki: Tuple[str, Dict[str, Any]]) -> None:
    got = members(pki, "good-v5")
    assert list(got) == ["Chiffrement_SNEV5.cer", "Chiffrement-SNEV5.pem", "AC_SNE_V5.cer",
                         "Installation_certificat_SNE.pdf"]
    with open(os.path.join(pki[0], "chiffrement-v5.der"), "rb") as fh:
        assert got["Chiffrement_SNEV5.cer"] == fh.read()
    with open(os.path.join(pki[0], "chiffrement-v5.pem"), "rb") as fh:
        assert got["Chiffrement-SNEV5.pem"] == fh.read()
    assert x509.load_der_x509_certificate(got["AC_SNE_V5.cer"]) == cert(pki, "ac-v5")
    pdf = got["Installation_certificat_SNE.pdf"]
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n") and 300 < len(pdf) < 1000
    startxref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[startxref:].startswith(b"xref\n")
    for number, offset in enumerate(re.findall(rb"(\d{10}) 00000 n", pdf), start=1):
        assert pdf[int(offset):].startswith(b"%d 0 obj" % number)


def test_misnamed_bundle_really_swaps_formats(pki: Tuple[str, Dict[str, Any]]) -> None:
    got = members(pki, "good-v5-misnamed")
    assert got["Chiffrement_SNEV5.cer"].startswith(b"-----BEGIN CERTIFICATE-----")
    assert got["Chiffrement-SNEV5.pem"].startswith(b"\x30\x82")


def test_each_bad_bundle_has_its_defect(pki: Tuple[str, Dict[str, Any]]) -> None:
    outdir, manifest = pki
    zpath = {name: os.path.join(outdir, e["file"]) for name, e in manifest["bundles"].items()}
    assert not zipfile.is_zipfile(zpath["not-a-zip"])
    assert zipfile.ZipFile(zpath["empty"]).namelist() == []
    assert {"../x", "/etc/evil"} <= set(zipfile.ZipFile(zpath["path-traversal"]).namelist())
    bomb = zipfile.ZipFile(zpath["oversized"]).getinfo("Annexe_technique.pdf")
    assert bomb.file_size == 64 * 1024 * 1024 and os.path.getsize(zpath["oversized"]) < 200_000
    assert len(zipfile.ZipFile(zpath["too-many-members"]).namelist()) >= 300
    garbage = members(pki, "garbage-cert")
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(garbage["Chiffrement_SNEV5.cer"])
    with pytest.raises(ValueError):
        x509.load_pem_x509_certificate(garbage["Chiffrement-SNEV5.pem"])
    key = serialization.load_pem_private_key(members(pki, "private-key")["Chiffrement_SNEV5.key"], None)
    assert key.public_key() == cert(pki, "chiffrement-v5").public_key()
    v4 = x509.load_der_x509_certificate(members(pki, "v4-as-v5")["Chiffrement_SNEV5.cer"])
    assert v4 == cert(pki, "chiffrement-v4")
    weak = cert(pki, "chiffrement-v5-weak-key").public_key()
    assert isinstance(weak, rsa.RSAPublicKey) and weak.key_size == 1024
    is_ca = cert(pki, "chiffrement-v5-leaf-is-ca").extensions.get_extension_for_class(x509.BasicConstraints)
    assert is_ca.value.ca
    wrong = cert(pki, "chiffrement-v5-wrong-key-usage")
    wrong_ku = wrong.extensions.get_extension_for_class(x509.KeyUsage).value
    assert wrong_ku.digital_signature and not wrong_ku.key_encipherment
    now = dt.datetime.now(dt.timezone.utc)
    assert cert(pki, "chiffrement-v5-expired").not_valid_after_utc < min(now, VALID_AT)
    assert cert(pki, "chiffrement-v5-not-yet-valid").not_valid_before_utc > VALID_AT
    tampered = members(pki, "tampered")["Chiffrement_SNEV5.cer"]
    good = cert(pki, "chiffrement-v5").public_bytes(serialization.Encoding.DER)
    diff = [i for i in range(len(good)) if good[i] != tampered[i]]
    assert len(tampered) == len(good) and len(diff) == 1 and diff[0] >= len(good) - 256  # in the signature


# -------------------------------------------------------------- reference verifier (first failure)
PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def _leaf_candidate(c: x509.Certificate) -> bool:
    """An encryption certificate: not a pure CA (CA:TRUE without keyEncipherment)."""
    try:
        is_ca = c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        encipher = c.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    except x509.ExtensionNotFound:
        encipher = False
    return not is_ca or encipher


def reference_check(zip_path: str, anchors: List[x509.Certificate], retired: List[str],
                    at: dt.datetime = VALID_AT, generation_pattern: Optional[str] = None) -> str:
    """First check failed; the generation label alone never refuses (only a pattern does)."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        return "zip_format"
    with zf:
        infos = zf.infolist()
        if not infos:
            return "zip_empty"
        for info in infos:
            parts = info.filename.replace("\\", "/").split("/")
            if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                return "zip_path"
        if len(infos) > 64 or any(i.file_size > 16 << 20 for i in infos):
            return "zip_limits"
        certs: Dict[str, x509.Certificate] = {}
        has_key = False
        for info in infos:
            data = zf.read(info)
            has_key = has_key or b"PRIVATE KEY-----" in data
            blobs: List[Tuple[str, bytes]] = [("pem", m) for m in PEM_CERT.findall(data)]
            if not blobs and data[:1] == b"\x30":
                blobs = [("der", data)]
            for kind, blob in blobs:
                try:
                    load = x509.load_pem_x509_certificate if kind == "pem" else x509.load_der_x509_certificate
                    c = load(blob)
                except ValueError:
                    return "parse"
                certs[hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()] = c
    if has_key:
        return "private_key"
    leaves = [c for c in certs.values() if _leaf_candidate(c)]
    if len(leaves) != 1:
        return "leaf_count"
    leaf = leaves[0]
    if any(make_pki.openssl_fingerprint(c.public_bytes(serialization.Encoding.DER)) in retired
           for c in certs.values()):
        return "retired"
    if generation_pattern is not None and not re.search(generation_pattern, leaf.subject.rfc4514_string()):
        return "generation"
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        return "key_size"
    if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
        return "basic_constraints"
    if not leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment:
        return "key_usage"
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        return "validity"
    try:
        verifier(anchors, at).verify(leaf, [c for c in certs.values() if c is not leaf])
    except VerificationError:
        return "chain"
    return "ok"


def test_expect_is_the_first_failing_check(pki: Tuple[str, Dict[str, Any]]) -> None:
    outdir, manifest = pki
    defaults = manifest["verifier_defaults"]
    anchors = [cert(pki, ident) for ident in defaults["trust_anchors"]]
    assert defaults["retired_sha256"] == [manifest["certificates"]["chiffrement-v4"]["sha256"],
                                          manifest["certificates"]["ac-v4"]["sha256"]]
    got, want = {}, {}
    for name, entry in manifest["bundles"].items():
        zpath = os.path.join(outdir, entry["file"])
        got[name] = reference_check(zpath, anchors, defaults["retired_sha256"])
        want[name] = entry.get("expect_default", entry["expect"])
        if got[name] == "ok":  # the label warns when the CN does not end with the generation
            cn = manifest["certificates"][entry["leaf"]]["cn"]
            got[name] += "" if cn.endswith(defaults["generation"]) else " (warn generation)"
            want[name] += " (warn %s)" % entry["warn_default"] if "warn_default" in entry else ""
        for case in entry.get("generation_pattern_cases", []):
            key = "%s + %s" % (name, case["generation_pattern"])
            got[key] = reference_check(zpath, anchors, defaults["retired_sha256"],
                                       generation_pattern=case["generation_pattern"])
            want[key] = case["expect"]
    assert got == want
    assert sum(" + " in key for key in got) == 3
    zpath = os.path.join(outdir, manifest["bundles"]["good-v4"]["file"])
    assert reference_check(zpath, anchors, []) == "ok"


def test_bomb_inflates_to_64_mib_of_zeros(pki: Tuple[str, Dict[str, Any]]) -> None:
    with zipfile.ZipFile(os.path.join(pki[0], pki[1]["bundles"]["oversized"]["file"])) as zf:
        total = 0
        with zf.open("Annexe_technique.pdf") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                assert block.count(0) == len(block)
                total += len(block)
    assert total == 64 * 1024 * 1024
