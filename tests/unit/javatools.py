"""keytool and throw-away certificates for the Java keystore tests."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEYTOOL = shutil.which("keytool")
needs_keytool = pytest.mark.skipif(KEYTOOL is None, reason="keytool is needed for these tests")
PASSWORD = "changeit"
ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
# English messages and UTF-8 output whatever the machine's locale.
JOPTS = ["-J-Duser.language=en", "-J-Dfile.encoding=UTF-8", "-J-Dsun.stdout.encoding=UTF-8"]


def keytool(*args, check=True):
    proc = subprocess.run([KEYTOOL] + JOPTS + list(args), capture_output=True, text=True, env=ENV,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError("keytool %s failed: %s%s" % (args, proc.stdout, proc.stderr))
    return proc


def make_cert_and_key(cn, issuer=None):
    """A self-signed CA certificate, or a leaf issued by ``issuer`` = (name, key).

    Returns (DER, (name, key)) so the result can issue further certificates.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER), (name, key)


def make_cert(cn):
    """DER of a self-signed CA certificate named ``cn``."""
    return make_cert_and_key(cn)[0]
