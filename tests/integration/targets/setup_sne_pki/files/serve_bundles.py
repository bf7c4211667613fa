"""Serve a folder over HTTPS (with its own test CA) and plain HTTP on loopback.

Used by the integration tests of sne.guichet.bundle:

    serve_bundles.py ROOT STATE_DIR [--lifetime SECONDS]

makes a TLS authority and a certificate for 127.0.0.1/localhost in STATE_DIR
(``tls-ca.pem``), starts both servers on free loopback ports, writes
``STATE_DIR/servers.json`` ({"https_port", "http_port", "pid", "ca"}) and serves until
killed or until the lifetime (default 900 s) is over.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import ipaddress
import json
import os
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tls(state: str) -> tuple:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("sne.guichet test TLS CA"))
          .issuer_name(_name("sne.guichet test TLS CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = os.path.join(state, "tls-ca.pem")
    with open(ca_path, "wb") as handle:
        handle.write(ca.public_bytes(serialization.Encoding.PEM))
    chain_path = os.path.join(state, "tls-server.pem")
    with open(chain_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
        handle.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return ca_path, chain_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("state")
    parser.add_argument("--lifetime", type=int, default=900)
    args = parser.parse_args()
    os.makedirs(args.state, exist_ok=True)
    ca_path, chain_path = make_tls(args.state)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=args.root)
    https = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_path)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for server in (https, plain):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    info = {"https_port": https.server_address[1], "http_port": plain.server_address[1],
            "pid": os.getpid(), "ca": ca_path}
    tmp = os.path.join(args.state, "servers.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(info, handle)
    os.rename(tmp, os.path.join(args.state, "servers.json"))
    threading.Event().wait(args.lifetime)


if __name__ == "__main__":
    main()
