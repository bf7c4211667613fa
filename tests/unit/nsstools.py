"""certutil and NSS test databases, read back independently of the nss backend's parser."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CERTUTIL = shutil.which("certutil")
# CI installs certutil (scripts/bootstrap.sh, libnss3-tools): the skip is for a bare laptop only.
needs_certutil = pytest.mark.skipif(CERTUTIL is None, reason="certutil (Debian package "
                                    "libnss3-tools) is needed for these tests")
NSS_PASSWORD = "nss-secret"
ENV = dict(os.environ, LC_ALL="C", NSS_SDB_USE_CACHE="no")


def certutil(folder, *args, password=None, check=True):
    """certutil on ``sql:folder``; ``password`` through a file next to the test's folder."""
    argv = [CERTUTIL, "-d", "sql:" + str(folder)] + list(args)
    if password is not None:
        pwfile = str(folder) + ".pw"
        with open(pwfile, "w") as handle:
            handle.write(password + "\n")
        argv += ["-f", pwfile]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=False)
    if password is not None:
        os.unlink(pwfile)
    if check and proc.returncode != 0:
        raise AssertionError("certutil %s failed: %s%s" % (args, proc.stdout, proc.stderr))
    return proc


def make_db(folder, password, with_key=True):
    """A new sql: database (empty password when ``password`` is None), with a key pair."""
    os.makedirs(str(folder))
    if password is None:
        certutil(folder, "-N", "--empty-password")
    else:
        certutil(folder, "-N", password=password)
    if with_key:
        noise = str(folder) + ".noise"
        with open(noise, "wb") as handle:
            handle.write(os.urandom(64))
        certutil(folder, "-S", "-x", "-n", "mykey", "-s", "CN=guichet", "-t", "u,u,u",
                 "-z", noise, "-k", "rsa", "-g", "2048", password=password or "")
        os.unlink(noise)


def add(folder, nickname, trust, der_file, password=None):
    certutil(folder, "-A", "-n", nickname, "-t", trust, "-i", der_file, password=password or "")


def nicknames(folder):
    """nickname -> trust as ``certutil -L`` prints them: the nickname is the line's first 60
    columns (certutil pads it to 60), the trust what follows."""
    out = certutil(folder, "-L").stdout.splitlines()
    assert out[1].startswith("Certificate Nickname") and "SSL,S/MIME,JAR/XPI" in out[2], out
    found = {}
    for line in out[4:]:
        if line.strip():
            found[line[:60].rstrip()] = line[60:].strip()
    return found


def fingerprint(der):
    """SHA-256 as the collection writes it (AA:BB:...)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def certificates(folder, nickname):
    """SHA-256 (AA:BB:...) of each certificate ``certutil -L -n NICK -a`` prints."""
    text = certutil(folder, "-L", "-n", nickname, "-a").stdout.encode("ascii")
    return sorted(fingerprint(c.public_bytes(serialization.Encoding.DER))
                  for c in x509.load_pem_x509_certificates(text))


def contents(folder):
    """nickname -> (trust, [sha256 hex]) of the whole database."""
    return dict((nick, (trust, certificates(folder, nick)))
                for nick, trust in nicknames(folder).items())


def keys(folder, password=None):
    """The lines of ``certutil -K`` (the private keys), without their position index."""
    out = certutil(folder, "-K", password=password or "").stdout
    return sorted(" ".join(line.split(">", 1)[1].split()) for line in out.splitlines()
                  if line.startswith("<"))


def files(folder):
    """The database files' bytes (and modes), to compare byte for byte."""
    out = {}
    for name in sorted(os.listdir(str(folder))):
        path = os.path.join(str(folder), name)
        with open(path, "rb") as handle:
            out[name] = (handle.read(), os.stat(path).st_mode)
    return out
