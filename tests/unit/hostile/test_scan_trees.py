"""The scan over hostile trees: deep folders, link loops, links out of the search roots,
file names that are not plain text, FIFOs, devices, sockets and huge files.

What must hold for each: the scan returns (a clean skip, counted in ``not_read``, or a
problem in ``unreadable``), opens no FIFO, device or socket, reads no huge file, follows no
link, and nothing outside the roots is reported (so the retire role's ``strays`` filter can
never offer it for the quarantine).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest
from hostile import corpus

from ansible_collections.sne.guichet.plugins.filter.strays import strays
from ansible_collections.sne.guichet.plugins.module_utils import _scan
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._x509 import subject_hash

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def cert(pki):
    """The retired certificate (PEM, DER, SHA-256) the trees hide."""
    pem = _read(os.path.join(pki["dir"], "chiffrement-v4.pem"))
    der = _read(os.path.join(pki["dir"], "chiffrement-v4.der"))
    return {"pem": pem, "der": der, "sha256": sha256_fingerprint(der)}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def found_paths(result):
    return sorted(place["path"] for places in result["found"].values() for place in places)


# ----------------------------------------------------------------------------- depth


def test_forty_deep_folders_and_max_depth(tmp_path, cert):
    deep = tmp_path.joinpath(*["level-%02d" % n for n in range(1, 41)])
    write(str(deep / "old.pem"), cert["pem"])
    assert found_paths(_scan.scan([str(tmp_path)], sha256=[cert["sha256"]])) == []
    result = _scan.scan([str(tmp_path)], sha256=[cert["sha256"]], max_depth=40)
    assert found_paths(result) == [] and result["not_read"]["max_depth"] == 1  # level-40 itself
    result = _scan.scan([str(tmp_path)], sha256=[cert["sha256"]], max_depth=41)
    assert found_paths(result) == [str(deep / "old.pem")]


def test_a_tree_deeper_than_path_max_is_a_problem_not_a_crash(tmp_path, cert):
    """300 folders of 30 characters: 9,000-character paths, past PATH_MAX (made with dir_fd)."""
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        for _n in range(300):
            os.mkdir("d" * 30, dir_fd=fd)
            inner = os.open("d" * 30, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        pem = os.open("old.pem", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(pem, cert["pem"])
        os.close(pem)
    finally:
        os.close(fd)
    with corpus.bounded(60):
        result = _scan.scan([str(tmp_path)], sha256=[cert["sha256"]], max_depth=1000)
    assert found_paths(result) == []
    assert [p["reason"] for p in result["unreadable"]] == ["cannot stat: File name too long"]
    json.dumps(result)


# ----------------------------------------------------------------------------- links


def test_link_loops_end_and_are_counted(tmp_path, cert):
    root = tmp_path / "root"
    write(str(root / "sub" / "old.pem"), cert["pem"])
    os.symlink("b", str(root / "a"))
    os.symlink("a", str(root / "b"))  # a -> b -> a
    os.symlink("self", str(root / "self"))
    os.symlink(".", str(root / "here"))  # a link to its own folder
    os.symlink("..", str(root / "sub" / "parent"))  # a link to its own parent
    os.symlink("../sub", str(root / "sub" / "again"))
    with corpus.bounded(60):
        result = _scan.scan([str(root)], sha256=[cert["sha256"]], max_depth=100)
    assert found_paths(result) == [str(root / "sub" / "old.pem")]
    assert result["not_read"]["symlink_broken"] == 3  # a, b, self: ELOOP
    assert result["not_read"]["symlink"] == 3  # folders: never followed
    assert result["files_scanned"] == 1


def test_links_out_of_the_roots_are_never_followed_nor_offered_for_quarantine(tmp_path, cert):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(str(outside / "old.pem"), cert["pem"])
    write(str(outside / "dir" / "old.cer"), cert["der"])
    write(str(root / "app" / "old.pem"), cert["pem"])  # a stray inside: movable
    os.symlink(str(outside / "old.pem"), str(root / "app" / "abs-link.pem"))
    os.symlink("../../outside/old.pem", str(root / "app" / "rel-link.pem"))
    os.symlink(str(outside / "dir"), str(root / "app" / "dir-link"))
    os.symlink("old.pem", str(root / "app" / ("%s.0" % subject_hash(cert["der"]))))  # inside
    before = {p: _read(str(outside / p)) for p in ("old.pem", "dir/old.cer")}
    result = _scan.scan([str(root)], sha256=[cert["sha256"]])
    assert result["not_read"]["symlink_outside"] == 3
    places = [(p["path"], p["format"]) for p in result["found"][cert["sha256"]]]
    assert sorted(places) == sorted([(str(root / "app" / "old.pem"), "pem"),
                                     (str(root / "app" / ("%s.0" % subject_hash(cert["der"]))), "link")])
    sorted_out = strays(result["files"], [])  # what the retire role would move
    assert sorted_out == {"movable": [str(root / "app" / "old.pem")], "attention": []}
    links = [str(root / "app" / n) for n in ("abs-link.pem", "rel-link.pem", "dir-link")]
    assert not set(links) & set(found_paths(result)) and not set(links) & set(result["files"])
    assert {p: _read(str(outside / p)) for p in before} == before


def test_a_root_that_is_a_link_is_followed_but_links_below_it_are_not(tmp_path, cert):
    real, outside = tmp_path / "real", tmp_path / "outside"
    write(str(real / "old.pem"), cert["pem"])
    write(str(outside / "old.pem"), cert["pem"])
    os.symlink(str(outside / "old.pem"), str(real / "out.pem"))
    os.symlink(str(real), str(tmp_path / "named"))
    result = _scan.scan([str(tmp_path / "named")], sha256=[cert["sha256"]])
    assert found_paths(result) == [str(tmp_path / "named" / "old.pem")]
    assert result["not_read"]["symlink_outside"] == 1


# ----------------------------------------------------------------------------- names

NAMES = [b"with space.pem", b"new\nline.pem", b"-dash.pem", b" lead and trail .pem", b"tab\tand\rcr.pem",
         "\u00e9t\u00e9 \u20ac.pem".encode("utf-8")]
NOT_UTF8 = [b"caf\xe9.pem", b"\xff\xfe.cer", b"\xed\xa0\x80 surrogate.pem", b"latin\xe9-dir"]


def utf8_only(value):
    """Every string in ``value`` is UTF-8 (ansible-core refuses a module result otherwise:
    "Refusing to deserialize an invalid UTF8 string value", MODULE_STRICT_UTF8_RESPONSE)."""
    if isinstance(value, dict):
        return all(utf8_only(k) and utf8_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(utf8_only(v) for v in value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def test_file_names_with_newlines_spaces_and_bytes_that_are_not_utf8(tmp_path, cert, pki):
    """Names that are UTF-8, spaces, newlines and all, are found as they are. A path that is
    not is never returned (the result could not reach the controller, and an escaped path
    must not name, and have moved, another file): a certificate sought in such a file is a
    problem in ``unreadable``, its path shown with \\x escapes; such a text file is not
    searched for references; a certificate not sought there is no news."""
    root = os.fsencode(str(tmp_path))
    for name in NAMES + NOT_UTF8[:3]:
        write(os.fsdecode(os.path.join(root, name)), cert["der"] if name.endswith(b".cer") else cert["pem"])
    write(os.fsdecode(os.path.join(root, NOT_UTF8[3], b"old.pem")), cert["pem"])
    write(os.fsdecode(os.path.join(root, b"other-\xe9.pem")), _read(os.path.join(pki["dir"], "root.pem")))
    write(os.fsdecode(os.path.join(root, b"app.conf")), b"truststore=with space.pem\n")
    write(os.fsdecode(os.path.join(root, b"app-\xe9.conf")), b"truststore=-dash.pem\n")
    os.symlink("with space.pem", os.fsdecode(os.path.join(root, b"lien-\xe9.pem")))  # counted only
    result = _scan.scan([str(tmp_path)], sha256=[cert["sha256"]], references_of=[cert["sha256"]],
                        exclude=["*trail*"])
    assert utf8_only(result)
    json.dumps(result)
    paths = set(os.fsencode(p) for p in found_paths(result))
    assert paths == set(os.path.join(root, n) for n in NAMES if b"trail" not in n)
    assert sorted(result["files"]) == sorted(os.fsdecode(p) for p in paths)
    assert result["not_read"]["excluded"] == 1 and result["not_read"]["symlink"] == 1
    shown = [os.path.join(root, n).decode("utf-8", "backslashreplace") for n in NOT_UTF8[:3]]
    shown.append(os.path.join(root, NOT_UTF8[3], b"old.pem").decode("utf-8", "backslashreplace"))
    assert sorted(u["path"] for u in result["unreadable"]) == sorted(shown)
    assert all("a certificate sought, in a file whose name is not UTF-8 (shown with \\x escapes)"
               in u["reason"] for u in result["unreadable"])
    named = {os.fsdecode(p): [] for p in paths}  # app-\xe9.conf names -dash.pem: not searched
    named[str(tmp_path / "with space.pem")] = [str(tmp_path / "app.conf")]
    assert result["references"] == named


def test_what_the_module_returns_for_a_path_that_is_not_utf8(tmp_path, cert):
    """Run as Ansible runs it: the JSON AnsibleModule prints is UTF-8 with every string UTF-8,
    so ansible-core takes it; the file appears in ``unreadable`` with \\x escapes (before the
    fix, the path came out as lone surrogates, \\udce9, and ansible-core failed the whole task)."""
    raw = os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9\nx.pem")
    write(os.fsdecode(raw), cert["pem"])
    write(str(tmp_path / "plain.pem"), cert["pem"])
    args = tmp_path / "args.json"
    module_args = {"paths": [str(tmp_path)], "sha256": [cert["sha256"]]}
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT_DIR, ".build", "collections"))
    module = os.path.join(ROOT_DIR, "plugins", "modules", "scan.py")
    done = subprocess.run([sys.executable, module, str(args)], capture_output=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.decode("utf-8"))
    assert utf8_only(result)
    assert [p["path"] for p in result["found"][cert["sha256"]]] == [str(tmp_path / "plain.pem")]
    assert [u["path"] for u in result["unreadable"]] == [raw.decode("utf-8", "backslashreplace")]
    assert "caf\\xe9\nx.pem" in result["unreadable"][0]["path"]


# ----------------------------------------------------------------------------- special files


def _special_files(folder):
    """A FIFO, a socket and (root only) a character device, all named like certificates."""
    made = [os.path.join(folder, "pipe.pem")]
    os.mkfifo(made[0])
    sock = socket.socket(socket.AF_UNIX)
    made.append(os.path.join(folder, "sock.pem"))
    sock.bind(made[-1])
    try:
        os.mknod(os.path.join(folder, "zero.cer"), 0o600 | stat.S_IFCHR, os.makedev(1, 5))
        made.append(os.path.join(folder, "zero.cer"))
    except (PermissionError, OSError):
        pass  # not root: no device node
    return made, sock


def test_fifos_devices_and_sockets_are_never_opened_by_the_scan(tmp_path, opened):
    made, sock = _special_files(str(tmp_path))
    try:
        result = corpus.in_thread(lambda: _scan.scan([str(tmp_path)] + made), made[0])
    finally:
        sock.close()
    assert result["not_read"]["special"] == 2 * len(made)  # in the folder, and as roots
    assert result["unreadable"] == [] and result["files_scanned"] == 0
    assert not set(made) & set(opened)


def test_a_huge_file_is_not_read(tmp_path, opened):
    huge = tmp_path / "huge.pem"
    with open(str(huge), "wb") as handle:
        handle.truncate(corpus.SIX_GIB)  # sparse
    del opened[:]
    result = _scan.scan([str(tmp_path), str(huge)])
    assert result["not_read"]["too_large"] == 1  # read once, as a root or in its folder
    assert str(huge) not in opened


class CountingBytes(bytes):
    """Bytes that add up how much of them ``count`` scans."""

    scanned = 0

    def count(self, sub, start=0, end=None):
        end = len(self) if end is None else end
        CountingBytes.scanned += max(0, end - start)
        return bytes.count(self, sub, start, end)


def test_a_file_of_many_pem_blocks_is_counted_in_one_pass(tmp_path, monkeypatch):
    """Found: the line of each PEM block was counted from the start of the file: a 5 MiB file
    of 180,000 BEGIN lines took minutes (quadratic). Now the lines are counted once: the bytes
    scanned for line numbers stay below twice the file's size (the two loops)."""
    data = CountingBytes(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n" * 2000
                         + b"-----BEGIN CERTIFICATE-----\n" * 2000)
    monkeypatch.setattr(CountingBytes, "scanned", 0)
    scanner = _scan.Scanner()
    scanner._text(str(tmp_path / "many.pem"), str(tmp_path / "many.pem"), data)
    reasons = [u["reason"] for u in scanner.unreadable]
    assert len(reasons) == 4000
    assert reasons[1999].startswith("PEM block #1999 (line 3999): ")
    assert reasons[2000] == "line 4001: -----BEGIN CERTIFICATE----- without its END line"
    assert reasons[-1] == "line 6000: -----BEGIN CERTIFICATE----- without its END line"
    assert CountingBytes.scanned <= 2 * len(data)
