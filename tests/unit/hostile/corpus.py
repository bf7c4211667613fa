"""The hostile corpus: good files of every format the collection reads, and ways to break them.

The seeds are made at test time (``build``): JKS and JCEKS by keytool (a private key, a
trusted certificate, a secret key in the JCEKS), PKCS#12 by keytool (with a private key) and
by cryptography (a Java truststore), a PEM bundle and a DER certificate of the test PKI, a CMS
envelope made by ``_probe/envelope.encrypt``, and the ministry's zip (``good-v5``).

Each seed knows where its structure is (``Seed.fields``: fixed-width integers such as JKS
lengths and counts or zip header fields; ``Seed.nodes``: ASN.1 headers, the DER inside OCTET
STRINGs included), so that :func:`hostile` can aim at length fields, not only at random bytes:
truncation at any point, byte flips, insertions and deletions, length fields set to huge
values, and nesting bombs.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import signal
import struct
import threading
import time
import zipfile
from typing import Any, Callable, Dict, List, NamedTuple, Tuple
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, NoEncryption, pkcs12
from hostile import grammar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from javatools import PASSWORD, keytool

from ansible_collections.sne.guichet.plugins.module_utils import _asn1
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import Malformed
from ansible_collections.sne.guichet.plugins.module_utils._formats import _java
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
from ansible_collections.sne.guichet.plugins.module_utils._probe import envelope

# Two budgets for every hostile test: the default run (derandomized, so CI sees the same
# examples every time) and the ``fuzz`` stage (scripts/test.sh fuzz): random and many more.
_COMMON = dict(deadline=None, database=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])  # big seeds
DEFAULT = settings(derandomize=True, **_COMMON)
FUZZ = settings(derandomize=False, print_blob=True, **_COMMON)
# Bounded waits only against hangs (a reader that loops), never a speed assertion.
HANG_SECONDS = 60
# The two runs of every hostile test: ``[default]`` in the test command, ``[fuzz]`` in the
# fuzz stage only (pytest.ini deselects the marker by default).
MODES = [pytest.param("default", id="default"), pytest.param("fuzz", id="fuzz", marks=pytest.mark.fuzz)]


class Seed(NamedTuple):
    """A good file and where its structure lies."""

    data: bytes
    fields: List[Tuple[int, int]]  # (offset, width) of fixed-width integers
    nodes: List[Tuple[int, int]]  # (header start, content start) of ASN.1 elements
    frames: List[Tuple[int, int, int]] = []  # Java keystores: length-prefixed parts
    tree: bool = False  # one DER element: grammar.changed_tree applies


# ----------------------------------------------------------------------------- structure


def asn1_nodes(data: bytes, base: int = 0, depth: int = 0) -> List[Tuple[int, int]]:
    """(start, content start) of every element of ``data``, and of the DER OCTET STRINGs hold."""
    found: List[Tuple[int, int]] = []
    try:
        nodes = _asn1.read_all(data)
    except Malformed:
        return found
    pending = [(node, 0) for node in nodes]
    while pending:
        node, level = pending.pop()
        found.append((base + node.start, base + node.cstart))
        if level > 40:
            continue
        try:
            if node.constructed:
                pending.extend((child, level + 1) for child in node.children())
            elif node.tag == _asn1.OCTET_STRING and node.content[:1] == b"\x30" and depth < 4:
                found.extend(asn1_nodes(node.content, base + node.cstart, depth + 1))
        except Malformed:
            continue
    return sorted(found)


def java_fields(data: bytes) -> List[Tuple[int, int]]:
    """(offset, width) of every integer the JKS/JCEKS reader reads, as it reads them."""
    fields: List[Tuple[int, int]] = [(0, 4)]  # the magic number

    class Recorder(_java._Reader):
        def take(self, n, what):
            if n in (1, 2, 4, 8):
                fields.append((self.pos, n))
            return super().take(n, what)

    with mock.patch.object(_jks, "_Reader", Recorder):
        _jks.parse(data, None)
    return fields


_LOCAL = (4, 2), (6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)
_CENTRAL = ((4, 2), (6, 2), (8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2),
            (32, 2), (38, 4), (42, 4))
_END = (4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)


def zip_fields(data: bytes) -> List[Tuple[int, int]]:
    """(offset, width) of the fields of every local header, central header and the end record."""
    fields = []
    for signature, layout in ((b"PK\x03\x04", _LOCAL), (b"PK\x01\x02", _CENTRAL), (b"PK\x05\x06", _END)):
        start = data.find(signature)
        while start >= 0:
            fields.extend((start + offset, width) for offset, width in layout)
            start = data.find(signature, start + 1)
    return fields


def rezip(members: List[Tuple[str, bytes]]) -> bytes:
    """A zip of ``members`` (stored), as the ministry ships them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), content)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- the seeds


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def build(pki: Dict[str, object], folder: str) -> Dict[str, Seed]:
    """Every seed, made in ``folder`` from the test PKI (keytool for the Java stores)."""
    pki_dir = str(pki["dir"])

    def cert(ident: str, ext: str = ".der") -> bytes:
        return _read(os.path.join(pki_dir, ident + ext))

    raw: Dict[str, bytes] = {}
    for storetype, name in (("JKS", "jks"), ("JCEKS", "jceks"), ("PKCS12", "p12_keys")):
        path = os.path.join(folder, name)
        common = ["-storetype", storetype, "-keystore", path, "-storepass", PASSWORD]
        keytool("-genkeypair", "-alias", "server", "-keyalg", "EC", "-dname", "CN=server",
                "-keypass", PASSWORD, *common)
        keytool("-importcert", "-noprompt", "-alias", "root", "-file",
                os.path.join(pki_dir, "root.der"), *common)
        if storetype == "JCEKS":
            keytool("-genseckey", "-alias", "secret", "-keyalg", "AES", "-keysize", "128",
                    "-keypass", PASSWORD, *common)
        raw[name] = _read(path)
    anchors = [pkcs12.PKCS12Certificate(x509.load_der_x509_certificate(cert(ident)), ident.encode())
               for ident in ("root", "ac-v5")]
    raw["p12_trust"] = pkcs12.serialize_java_truststore(anchors, BestAvailableEncryption(PASSWORD.encode()))
    raw["p12_clear"] = pkcs12.serialize_java_truststore(anchors, NoEncryption())  # bags in clear, no MAC
    raw["pem"] = cert("root", ".pem") + cert("ac-v5", ".pem") + cert("chiffrement-v5", ".pem")
    raw["der"] = cert("chiffrement-v5")
    raw["cms"] = envelope.encrypt(b"<message>hostile</message>", cert("chiffrement-v5"))[0]
    raw["zip"] = _read(os.path.join(pki_dir, pki["bundles"]["good-v5"]["file"]))
    seeds = {}
    for name, data in raw.items():
        if name in ("jks", "jceks"):
            seeds[name] = Seed(data, java_fields(data), [], grammar.java_frames(data))
        elif name == "zip":
            seeds[name] = Seed(data, zip_fields(data), [])
        elif name == "pem":
            seeds[name] = Seed(data, [], [])
        else:
            seeds[name] = Seed(data, [], asn1_nodes(data), tree=grammar.tree(data) is not None)
    return seeds


# ----------------------------------------------------------------------------- mutations

HUGE_FIELDS = (b"\xff", b"\x7f", b"\x80", b"\x00")  # repeated to the field's width
HUGE_LENGTHS = (b"\x84\xff\xff\xff\xff", b"\x84\x7f\xff\xff\xff", b"\x84\x00\x00\x00\x00",
                b"\x85\x01\x00\x00\x00\x00", b"\x88" + b"\xff" * 8, b"\x80", b"\x81\x00",
                b"\x83\xff\xff\xff", b"\x7f")
TOKENS = (b"\0", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\r\n", b"\\n",
          b"\n-----BEGIN CERTIFICATE-----\n", b"\n-----END CERTIFICATE-----\n",
          b"-----BEGIN TRUSTED CERTIFICATE-----", b"-----BEGIN PKCS7-----", b"=", b"====",
          b"PK\x03\x04", b"\xfe\xed\xfe\xed", b"\xac\xed\x00\x05", b"\x71\x00\x7e\x00\x00")


def _definite_bomb(depth: int) -> bytes:
    data = b"\x05\x00"
    for _n in range(depth):
        data = _asn1.encode(0x30, data)
    return data


def _huge_oid(arc_octets: int) -> bytes:
    return _asn1.encode(_asn1.OID, b"\x2a" + b"\xff" * arc_octets + b"\x01")


def _bomb(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(("indefinite", "definite", "long", "oid", "set", "java", "pem")))
    count = draw(st.integers(1, 3000))
    if kind == "indefinite":
        return b"\x30\x80" * count
    if kind == "definite":
        return _definite_bomb(min(count, 300))
    if kind == "long":
        return b"\x30\x84\x7f\xff\xff\xff" * count
    if kind == "oid":
        return _huge_oid(count)
    if kind == "set":
        return _asn1.encode(0x31, b"\x30\x00" * count)
    if kind == "java":  # nested object arrays in a Java serialization stream
        return b"\x75\x72\x00\x02[L" + b"\0" * 8 + b"\x02\x00\x00\x78\x70\x00\x00\x00\x01" * min(count, 500)
    return b"-----BEGIN CERTIFICATE-----\n" * count


def _pos(draw: st.DrawFn, data: bytearray) -> int:
    return draw(st.integers(0, len(data)))


def _structural(draw: st.DrawFn, data: bytearray, seed: Seed) -> bytearray:
    """One change aimed at the structure: a length field, an ASN.1 header, a bomb inside."""
    choices = ["bomb"] + (["field"] if seed.fields else []) + (["header", "content"] if seed.nodes else [])
    choice = draw(st.sampled_from(choices))
    if choice == "field":
        offset, width = draw(st.sampled_from(seed.fields))
        value = draw(st.sampled_from(HUGE_FIELDS + ("plus", "minus", "random")))
        old = int.from_bytes(data[offset:offset + width], "big")
        if value == "plus":
            new = ((old + draw(st.integers(1, 16))) % (1 << 8 * width)).to_bytes(width, "big")
        elif value == "minus":
            new = ((old - draw(st.integers(1, 16))) % (1 << 8 * width)).to_bytes(width, "big")
        elif value == "random":
            new = draw(st.binary(min_size=width, max_size=width))
        else:
            new = value * width
        data[offset:offset + width] = new
        return data
    if choice in ("header", "content"):
        start, cstart = draw(st.sampled_from(seed.nodes))
        if choice == "header":
            if draw(st.booleans()):
                data[start:start + 1] = bytes([draw(st.integers(0, 255))])
            else:
                data[start + 1:cstart] = draw(st.sampled_from(HUGE_LENGTHS))
        else:
            data[cstart:cstart] = _bomb(draw)
        return data
    where = _pos(draw, data)
    data[where:where] = _bomb(draw)
    return data


def _bytewise(draw: st.DrawFn, data: bytearray) -> bytearray:
    op = draw(st.sampled_from(("truncate", "flip", "set", "insert", "token", "delete")))
    if op == "truncate":
        return data[:_pos(draw, data)]
    if not data:
        return data
    where = draw(st.integers(0, len(data) - 1))
    if op == "flip":
        data[where] ^= 1 << draw(st.integers(0, 7))
    elif op == "set":
        data[where] = draw(st.integers(0, 255))
    elif op == "insert":
        data[where:where] = draw(st.binary(min_size=1, max_size=8))
    elif op == "token":
        data[where:where] = draw(st.sampled_from(TOKENS))
    else:
        del data[where:where + draw(st.integers(1, 16))]
    return data


BOMBS = st.composite(_bomb)()


@st.composite
def hostile(draw: st.DrawFn, seed: Seed) -> bytes:
    """``seed`` broken. Half the time (when the seed has a grammar) one part is changed and
    the framing written again (``grammar``), the integrity check recomputed or not; else
    structural changes first (their offsets are the seed's), then bytes."""
    if (seed.frames or seed.tree) and draw(st.booleans()):
        if seed.frames:
            changed = draw(grammar.changed_java(seed.data, seed.frames, BOMBS))
        else:
            changed = draw(grammar.changed_tree(seed.data, BOMBS)) or seed.data
        return grammar.reseal(changed, PASSWORD) if draw(st.booleans()) else changed
    data = bytearray(seed.data)
    for _n in range(draw(st.integers(0, 2))):
        data = _structural(draw, data, seed)
    for _n in range(draw(st.integers(0 if len(data) != len(seed.data) else 1, 3))):
        data = _bytewise(draw, data)
    return bytes(data)


def any_of(seeds: Dict[str, Seed], names: Any) -> st.SearchStrategy:
    """One of the seeds ``names``, broken."""
    return st.sampled_from(sorted(names)).flatmap(lambda name: hostile(seeds[name]))


def pem_of(der: bytes, label: str = "CERTIFICATE") -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN %s-----\n%s-----END %s-----\n" % (label.encode(), body, label.encode())


@st.composite
def hostile_pem(draw: st.DrawFn, seeds: Dict[str, Seed]) -> bytes:
    """A PEM file whose text is broken, or whose certificates are broken DER, well wrapped."""
    if draw(st.booleans()):
        return draw(hostile(seeds["pem"]))
    der = draw(hostile(seeds["der"]))
    label = draw(st.sampled_from(("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE", "PKCS7")))
    return seeds["pem"].data[:draw(st.integers(0, len(seeds["pem"].data)))] + pem_of(der, label)


@st.composite
def hostile_zip(draw: st.DrawFn, seeds: Dict[str, Seed]) -> bytes:
    """The ministry's zip broken as bytes, or rebuilt with a broken member (CRCs right)."""
    if draw(st.booleans()):
        return draw(hostile(seeds["zip"]))
    with zipfile.ZipFile(io.BytesIO(seeds["zip"].data)) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    index = draw(st.integers(0, len(members) - 1))
    name, content = members[index]
    if content.lstrip()[:5] == b"-----":
        broken = draw(hostile_pem(seeds))
    elif content[:1] == b"\x30":
        broken = draw(hostile(seeds["der"]))
    else:
        broken = draw(hostile(Seed(content, [], [])))
    members[index] = (draw(st.sampled_from((name, name + ".pem", "x.der", "notes.txt"))), broken)
    return rezip(members)


# ----------------------------------------------------------------------------- outcomes


def explore(mode: str, label: str, budget: Tuple[int, int], strategy: st.SearchStrategy,
            check: Callable[[Any], None]) -> None:
    """``check`` each example of ``strategy``: ``budget[0]`` derandomized ones in the default
    run, ``budget[1]`` random ones in the fuzz stage; each bounded against hangs. Prints how
    many ran and how long it took (``pytest -s``: the figures of docs/reliability.md)."""
    calls = []

    @settings(DEFAULT if mode == "default" else FUZZ, max_examples=budget[mode != "default"])
    @given(strategy)
    def run(example: Any) -> None:
        calls.append(example)
        with bounded():
            check(example)

    started = time.monotonic()
    run()
    print("hostile %s[%s]: %d examples, %.1f s" % (label, mode, len(calls), time.monotonic() - started))


SIX_GIB = 6 * 1024 ** 3  # a sparse file that big: "huge", never to be read


def unblock(path: str) -> None:
    """Open the FIFO ``path`` for writing, so that a reader blocked on it returns."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def in_thread(call: Callable[[], Any], fifo: str, seconds: int = 30) -> Any:
    """``call()`` in a thread; fail (and unblock it) if it still waits on ``fifo`` after
    ``seconds``: the test fails instead of hanging."""
    outcome: Dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock(fifo)
        thread.join(10)
        pytest.fail("blocked on the FIFO %s" % fifo)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Hang(Exception):
    """A reader still busy after HANG_SECONDS: it loops."""


@contextlib.contextmanager
def bounded(seconds: int = HANG_SECONDS):
    """Fail (Hang) instead of hanging when the body does not return in ``seconds``."""
    def alarm(_signum, _frame):
        raise Hang("still running after %d s" % seconds)

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def documented_value_error(exc: ValueError) -> bool:
    """A ValueError an API documents (the certificate reader's), not a decoder's or Python's
    integer-conversion limit leaking out."""
    return exc.__class__ is ValueError and "integer string conversion" not in str(exc)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)
