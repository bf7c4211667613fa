"""Revocation proven by the CRLs (plugins/module_utils/_bundle/crl.py, through verify_bundle).

Every CRL of the test PKI (make_pki.py, manifest["crls"]) is given, as DER and as PEM, alone with
the good V5 bundle: each gives the result its manifest names. Then the retired generation,
the order of the checks (signature before lookup), and CRLs read by path, by URL and from the
certificate's distribution point through the module's own fetch code (real HTTP servers).
"""

from __future__ import annotations

import datetime
import http.server
import io
import os
import subprocess
import threading
import urllib.request
import zipfile

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._bundle import crl as crl_module
from ansible_collections.sne.guichet.plugins.module_utils._bundle.fetch import read_source
from ansible_collections.sne.guichet.plugins.module_utils._bundle.intake import BundleError
from ansible_collections.sne.guichet.plugins.module_utils._bundle.policy import Policy, verify_bundle
from ansible_collections.sne.guichet.plugins.module_utils._bundle.run import read_crls
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import FetchError

VALID_AT = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
CRLS = ["ac-v4", "ac-v5", "ac-v5-revokes-v5", "ac-v5-expired", "ac-v5-not-yet-valid", "ac-v5-wrong-key",
        "ac-v5-unknown-critical", "ac-v6", "garbage"]


def _read(pki, rel):
    with open(os.path.join(pki["dir"], rel), "rb") as handle:
        return handle.read()


def _crl(pki, name, form="der"):
    rel = pki["crls"][name][form]
    return (rel, _read(pki, rel))


def _cert_pem(pki, ident):
    return _read(pki, pki["certificates"][ident]["path"])


def _good_v5(pki):
    return _read(pki, pki["bundles"]["good-v5"]["file"])


def _policy(pki, crls=(), **overrides):
    args = dict(
        trust_anchors=[_cert_pem(pki, "root")],
        generation="V5",
        retired_sha256=pki["verifier_defaults"]["retired_sha256"],
        valid_at=VALID_AT,
        crls=list(crls),
    )
    args.update(overrides)
    return Policy(**args)


def _retired(pki, **overrides):
    """The V4 certificate and its authority, V4 required revoked."""
    args = dict(retired_certificates=[_cert_pem(pki, "chiffrement-v4"), _cert_pem(pki, "ac-v4")],
                retired_generation="V4", require_retired_revoked=True)
    args.update(overrides)
    return args


def _refused(data, policy, fetch=None):
    with pytest.raises(BundleError) as info:
        verify_bundle(data, policy, fetch=fetch)
    assert info.value.msg
    return info.value


def test_manifest_lists_every_crl_tested(pki):
    assert sorted(pki["crls"]) == sorted(CRLS)


@pytest.mark.parametrize("form", ["der", "pem"])
@pytest.mark.parametrize("name", CRLS)
def test_each_crl_alone_gives_its_named_result(pki, name, form):
    expected = pki["crls"][name]["expect"]
    policy = _policy(pki, [_crl(pki, name, form)])
    if expected == "ok":
        facts = verify_bundle(_good_v5(pki), policy)
        [entry] = facts["revocation"]
        assert entry["revoked"] is False and entry["generation"] == "V5" and entry["role"] == "current"
        assert entry["sha256"] == pki["certificates"]["chiffrement-v5"]["sha256"]
        assert entry["crl"] == pki["crls"][name][form]
    else:
        error = _refused(_good_v5(pki), policy)
        assert error.check == expected, error.msg
        # the refusal still says which bundle it was
        if expected != "crl_parse":
            assert error.facts["certificate"]["sha256"] == pki["certificates"]["chiffrement-v5"]["sha256"]


def test_v5_on_the_crl_refuses_the_bundle_and_says_since_when(pki):
    error = _refused(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5-revokes-v5")]))
    assert error.check == "revoked"
    listed = pki["crls"]["ac-v5-revokes-v5"]["revoked"][0]
    assert listed["certificate"] == "chiffrement-v5"
    [entry] = error.facts["revocation"]
    assert entry["revoked"] is True and entry["revoked_at"] == "2026-03-01T00:00:00+00:00"
    assert entry["serial"] == listed["serial_hex"] and entry["reason"] == "key_compromise"
    assert "since 2026-03-01T00:00:00+00:00" in error.msg and "AC SNE V5 (test)" in error.msg


def test_a_good_crl_among_others_does_not_outweigh_the_one_that_revokes(pki):
    error = _refused(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5"), _crl(pki, "ac-v5-revokes-v5", "pem")]))
    assert error.check == "revoked"


def test_signature_is_checked_before_any_lookup(pki):
    """The wrong-key CRL lists chiffrement-v5: refused for its signature, not as revoking V5."""
    listed = [e["certificate"] for e in pki["crls"]["ac-v5-wrong-key"]["revoked"]]
    assert "chiffrement-v5" in listed
    assert pki["crls"]["ac-v5-wrong-key"]["issuer"] == pki["certificates"]["ac-v5"]["subject"]
    error = _refused(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5-wrong-key")]))
    assert error.check == "crl_signature"
    assert error.facts["revocation"] == []  # nothing it lists was looked up
    # ... and before the staleness check: past its nextUpdate it still fails its signature
    late = datetime.datetime(2041, 1, 1, tzinfo=datetime.timezone.utc)
    crl = _crl(pki, "ac-v5-wrong-key")
    with pytest.raises(BundleError) as info:
        crl_module.prove_revocation(
            [crl_module.Subject(_x509(pki, "chiffrement-v5"), "V5", "current", True, False)],
            [_x509(pki, "ac-v5")], [crl], late)
    assert info.value.check == "crl_signature"


def _x509(pki, ident):
    from cryptography import x509

    return x509.load_pem_x509_certificate(_cert_pem(pki, ident))


def test_openssl_agrees_on_the_signatures(pki):
    """The oracle: openssl crl -verify accepts the good CRLs and refuses the wrong-key one."""
    for name, authority, ok in (("ac-v5", "ac-v5", True), ("ac-v4", "ac-v4", True),
                                ("ac-v5-wrong-key", "ac-v5", False)):
        run = subprocess.run(["openssl", "crl", "-noout", "-inform", "DER", "-in",
                              os.path.join(pki["dir"], pki["crls"][name]["der"]),
                              "-CAfile", os.path.join(pki["dir"], pki["certificates"][authority]["path"])],
                             capture_output=True, text=True, check=False)
        assert ("verify OK" in run.stdout + run.stderr) is ok, (name, run.stdout, run.stderr)


def test_crl_stale_at_the_edges(pki):
    crl = pki["crls"]["ac-v5"]
    next_update = datetime.datetime.fromisoformat(crl["next_update"].replace("Z", "+00:00"))
    this_update = datetime.datetime.fromisoformat(crl["this_update"].replace("Z", "+00:00"))
    subject = [crl_module.Subject(_x509(pki, "chiffrement-v5"), "V5", "current", True, False)]
    pool = [_x509(pki, "ac-v5")]
    source = [_crl(pki, "ac-v5")]
    assert crl_module.prove_revocation(subject, pool, source, this_update)[0]["revoked"] is False
    for when in (this_update - datetime.timedelta(seconds=1), next_update):
        with pytest.raises(BundleError) as info:
            crl_module.prove_revocation(subject, pool, source, when)
        assert info.value.check == "crl_stale"


# ------------------------------------------------------------------ the retired generation

def test_retired_v4_proven_revoked_since_the_cutover(pki):
    facts = verify_bundle(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5"), _crl(pki, "ac-v4", "pem")],
                                                 **_retired(pki)))
    current, retired = facts["revocation"]
    assert (current["generation"], current["revoked"]) == ("V5", False)
    assert retired["generation"] == "V4" and retired["role"] == "retired"
    assert retired["sha256"] == pki["certificates"]["chiffrement-v4"]["sha256"]
    assert retired["revoked"] is True and retired["revoked_at"] == "2016-01-07T08:00:00+00:00"
    assert retired["authority"] == "AC SNE V4 (test)" and retired["reason"] == "superseded"
    assert retired["crl"] == pki["crls"]["ac-v4"]["pem"]
    assert retired["crl_next_update"] == "2040-01-01T00:00:00+00:00"


def test_retired_not_revoked_when_its_crl_does_not_list_it(pki):
    """Rotating to V6 with V5 (unlabelled) as the retired one: AC SNE V5's CRL does not list it."""
    retired = [_cert_pem(pki, "chiffrement-v5-unlabelled"), _cert_pem(pki, "ac-v5")]
    policy = _policy(pki, [_crl(pki, "ac-v6"), _crl(pki, "ac-v5")], generation="V6", retired_sha256=[],
                     retired_certificates=retired, retired_generation="V5", require_retired_revoked=True)
    error = _refused(_read(pki, pki["bundles"]["good-v6"]["file"]), policy)
    assert error.check == "retired_not_revoked"
    found = [(e["generation"], e["revoked"]) for e in error.facts["revocation"]]
    assert found == [("V6", False), ("V5", False)]


def test_retired_required_without_its_crl_is_crl_missing(pki):
    error = _refused(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5")], **_retired(pki)))
    assert error.check == "crl_missing"
    assert "AC SNE V4" in error.msg


def test_retired_crl_without_retired_certificates_is_another_issuer(pki):
    error = _refused(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5"), _crl(pki, "ac-v4")]))
    assert error.check == "crl_issuer"


def test_retired_crl_unverifiable_without_its_authority(pki):
    only_v4 = [_cert_pem(pki, "chiffrement-v4")]
    error = _refused(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5"), _crl(pki, "ac-v4")],
                                            **_retired(pki, retired_certificates=only_v4)))
    assert error.check == "crl_signature"
    assert "is not known" in error.msg


def test_retired_reported_but_not_required(pki):
    facts = verify_bundle(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5")],
                                                 **_retired(pki, require_retired_revoked=False)))
    assert [e["revoked"] for e in facts["revocation"]] == [False, None]


def test_retired_revoked_but_not_required_is_reported_not_refused(pki):
    facts = verify_bundle(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5"), _crl(pki, "ac-v4")],
                                                 **_retired(pki, require_retired_revoked=False)))
    assert [e["revoked"] for e in facts["revocation"]] == [False, True]


def test_retired_certificates_are_refused_in_the_bundle(pki):
    error = _refused(_read(pki, pki["bundles"]["v4-as-v5"]["file"]),
                     _policy(pki, retired_sha256=[], **_retired(pki, require_retired_revoked=False)))
    assert error.check == "retired"


def test_a_retired_authority_only_verifies_crls(pki):
    """V5 renewed under the same authority: AC SNE V5 given with the retired certificates is not
    refused (it is not retired), and it verifies the CRL about the retired V5 (unlabelled)."""
    retired = [_cert_pem(pki, "chiffrement-v5-unlabelled"), _cert_pem(pki, "ac-v5")]
    facts = verify_bundle(_good_v5(pki), _policy(pki, [_crl(pki, "ac-v5")], retired_certificates=retired))
    found = [(e["role"], e["revoked"]) for e in facts["revocation"]]
    assert found == [("current", False), ("retired", False)]


def test_require_retired_revoked_needs_the_retired_certificate(pki):
    with pytest.raises(BundleError) as info:
        _policy(pki, require_retired_revoked=True, retired_certificates=[_cert_pem(pki, "ac-v4")])
    assert info.value.check == "arguments"


def test_no_crl_no_revocation(pki):
    assert verify_bundle(_good_v5(pki), _policy(pki))["revocation"] == []


def test_several_crls_in_one_pem_file(pki):
    both = _crl(pki, "ac-v5", "pem")[1] + _crl(pki, "ac-v4", "pem")[1]
    facts = verify_bundle(_good_v5(pki), _policy(pki, [("both.pem", both)], **_retired(pki)))
    found = [(e["revoked"], e["crl"]) for e in facts["revocation"]]
    assert found == [(False, "both.pem#1"), (True, "both.pem#2")]


# ------------------------------------------------------------- by path, by URL, by distribution point

class _Module:
    """What ansible.module_utils.urls.fetch_url reads of a module: its parameters and tmpdir."""

    def __init__(self, tmpdir):
        self.params = {"validate_certs": True, "use_proxy": True, "ca_path": None}
        self.tmpdir = tmpdir

    def fail_json(self, **kwargs):  # pragma: no cover - fetch_url only calls it for missing libraries
        raise AssertionError(kwargs)


class _Server:
    """HTTP server on loopback serving the PKI's crls/ folder by file name, also as a proxy
    (the request line then holds the whole URL: http://crl.sne.test/ac-v5.crl)."""

    def __init__(self, folder):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                outer.requests.append(self.path)
                path = os.path.join(folder, os.path.basename(self.path.split("?")[0]))
                if not os.path.isfile(path):
                    self.send_error(404)
                    return
                with open(path, "rb") as handle:
                    body = handle.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(pki):
    served = _Server(os.path.join(pki["dir"], "crls"))
    yield served
    served.close()


@pytest.fixture(autouse=True)
def keep_the_global_opener():
    """ansible's open_url installs its opener (its proxy included) as urllib's global one: put
    the previous one back, or the tests after these (the simulator's admin calls) would go
    through a proxy that is gone."""
    saved = getattr(urllib.request, "_opener", None)
    yield
    urllib.request.install_opener(saved)


@pytest.fixture()
def no_proxy_env(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_crls_by_path_and_by_url(pki, server, tmp_path, no_proxy_env):
    module = _Module(str(tmp_path))
    items = [os.path.join(pki["dir"], pki["crls"]["ac-v5"]["der"]), server.url + "/ac-v4.pem"]
    sources = read_crls(module, items, 10)
    assert [s for s, _data in sources] == items
    facts = verify_bundle(_good_v5(pki), _policy(pki, sources, **_retired(pki)))
    assert [e["crl"] for e in facts["revocation"]] == items
    assert facts["revocation"][1]["revoked"] is True
    assert server.requests == ["/ac-v4.pem"]
    with pytest.raises(FetchError, match="404"):
        read_crls(module, [server.url + "/absent.crl"], 10)
    with pytest.raises(FetchError, match="cannot read"):
        read_crls(module, [os.path.join(pki["dir"], "crls", "absent.crl")], 10)


def test_crl_given_as_pem_text(pki, tmp_path):
    pem = _crl(pki, "ac-v5-revokes-v5", "pem")[1].decode("ascii")
    sources = read_crls(_Module(str(tmp_path)), [pem], 10)
    assert sources == [("crls[0]", pem.encode("ascii"))]
    assert _refused(_good_v5(pki), _policy(pki, sources)).check == "revoked"


def _cdp_bundle(pki):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        leaf = _read(pki, pki["certificates"]["chiffrement-v5-cdp"]["der"])
        archive.writestr("Chiffrement_SNEV5.cer", leaf)
        archive.writestr("AC_SNE_V5.cer", _read(pki, pki["certificates"]["ac-v5"]["der"]))
    return buf.getvalue()


def test_crl_from_the_distribution_point(pki, server, tmp_path, monkeypatch, no_proxy_env):
    """chiffrement-v5-cdp names http://crl.sne.test/ac-v5.crl: fetched through a proxy (the
    environment's http_proxy, as fetch_url honours it), verified, looked up."""
    cert = _x509(pki, "chiffrement-v5-cdp")
    assert crl_module.distribution_points(cert) == [pki["crl_distribution_point"]] == ["http://crl.sne.test/ac-v5.crl"]
    assert crl_module.distribution_points(_x509(pki, "chiffrement-v5")) == []
    monkeypatch.setenv("http_proxy", server.url)
    module = _Module(str(tmp_path))

    def fetch(url):
        return read_source(module, url, crl_module.MAX_CRL_SIZE, 10)

    facts = verify_bundle(_cdp_bundle(pki), _policy(pki, crl_from_distribution_points=True), fetch=fetch)
    [entry] = facts["revocation"]
    assert entry["revoked"] is False and entry["crl"] == "http://crl.sne.test/ac-v5.crl"
    assert server.requests == ["http://crl.sne.test/ac-v5.crl"]
    # Off, nothing is fetched and nothing required.
    assert verify_bundle(_cdp_bundle(pki), _policy(pki), fetch=fetch)["revocation"] == []
    assert len(server.requests) == 1


def test_distribution_point_that_fails_refuses(pki, tmp_path, monkeypatch, no_proxy_env):
    empty = _Server(str(tmp_path))  # a proxy that has nothing: 404 for every URL
    try:
        monkeypatch.setenv("http_proxy", empty.url)
        module = _Module(str(tmp_path))
        error = _refused(_cdp_bundle(pki), _policy(pki, crl_from_distribution_points=True),
                         fetch=lambda url: read_source(module, url, crl_module.MAX_CRL_SIZE, 10))
    finally:
        empty.close()
    assert error.check == "fetch" and "distribution point" in error.msg and "404" in error.msg
    assert empty.requests == ["http://crl.sne.test/ac-v5.crl"]


def test_distribution_points_asked_but_none_named_is_crl_missing(pki):
    error = _refused(_good_v5(pki), _policy(pki, crl_from_distribution_points=True), fetch=lambda url: b"")
    assert error.check == "crl_missing"
