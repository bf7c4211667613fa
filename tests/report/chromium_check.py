"""Open a rendered report.html in headless Chromium and check what a browser really shows.

Two Chromium runs on the file: ``--screenshot`` (a PNG to look at, kept as a CI artefact)
and ``--dump-dom`` (the DOM after the page's script ran), which is parsed with the standard
library and checked: one totals tile per expected status with the expected number, one
``<tr data-host=...>`` per expected host, the expected texts, no external resource, and
(unless ``require_js=False``) the page's script ran without error (``<html data-js="ready">``).

Usage::

    python tests/report/chromium_check.py report.html --screenshot shot.png --report report.json
    python tests/report/chromium_check.py report.html --screenshot shot.png \\
        --host guichet-001 --host guichet-002 --total failed=1 --total ok=1 --text "DRY RUN"

``--report`` takes the expected hosts and totals from the report's JSON. Exit status 0 when
every check passed, 1 with the list of problems otherwise, 2 when Chromium is missing.
``CHROMIUM`` names the browser binary (default: the first of chromium, chromium-browser found).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from html.parser import HTMLParser
from typing import Iterable

TIMEOUT = 60  # seconds, per Chromium run
WINDOW = "1400,2000"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ChromiumMissing(RuntimeError):
    """No Chromium binary was found."""


class CheckFailed(AssertionError):
    """The page, as Chromium shows it, is not what was expected; ``problems`` lists why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("report check failed:\n  - " + "\n  - ".join(problems))


def find_chromium() -> str | None:
    """The Chromium binary to use, or ``None``."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        return shutil.which(wanted)
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(cmd: list[str], timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout kill the whole group."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise CheckFailed(["chromium did not finish within %d s: %s" % (timeout, " ".join(cmd))]) from None
    finally:
        # Chromium leaves helper processes (zygote, crashpad) behind at times: end the group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _chromium(binary: str, url: str, extra: list[str], timeout: int) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="sne-chromium-")
    try:
        cmd = [binary, *FLAGS, "--user-data-dir=" + profile, "--window-size=" + WINDOW, *extra, url]
        result = _run(cmd, timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if result.returncode != 0:
        tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise CheckFailed(["chromium exited with %d: %s\n%s"
                           % (result.returncode, " ".join(cmd), "\n".join(tail))])
    return result


# Elements whose boundaries separate words; other tags (span, a, wbr...) join their text.
BLOCKS = {"address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog", "div",
          "dl",
          "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
          "header", "hr", "li", "main", "nav", "ol", "option", "p", "pre", "section", "summary", "table",
          "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Dom(HTMLParser):
    """What the checks need from the dumped DOM (Chromium serialises it well formed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.html_attrs: dict[str, str] = {}
        self.title = ""
        self.rows: list[dict[str, str]] = []
        self.tiles: dict[str, dict[str, str]] = {}
        self.texts: list[str] = []
        self.external: list[str] = []
        self._stack: list[str] = []
        self._tile: tuple[str, int] | None = None  # status, depth of the tile element
        self._n_depth = 0  # depth of the tile's <span class="n">, 0 outside
        self._title_depth = 0
        self._skip_depth = 0  # inside <script>/<style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        classes = a.get("class", "").split()
        self._external(tag, a)
        if tag in BLOCKS:
            self.texts.append(" ")
        if tag in VOID:
            return
        self._stack.append(tag)
        depth = len(self._stack)
        if tag == "html":
            self.html_attrs = a
        elif tag == "title" and not self._title_depth:
            self._title_depth = depth
        elif tag in ("script", "style") and not self._skip_depth:
            self._skip_depth = depth
        elif tag == "tr" and "data-host" in a:
            self.rows.append(a)
        if "total" in classes and "data-status" in a and self._tile is None:
            self._tile = (a["data-status"], depth)
            self.tiles[a["data-status"]] = dict(a, n="")
        elif self._tile and "n" in classes and not self._n_depth:
            self._n_depth = depth

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._external(tag, {k: (v or "") for k, v in attrs})

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS:
            self.texts.append(" ")
        if tag in VOID or tag not in self._stack:
            return
        while self._stack:
            depth = len(self._stack)
            open_tag = self._stack.pop()
            if self._tile and depth == self._tile[1]:
                self._tile = None
            if depth == self._n_depth:
                self._n_depth = 0
            if depth == self._title_depth:
                self._title_depth = 0
            if depth == self._skip_depth:
                self._skip_depth = 0
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._title_depth:
            self.title += data
        elif self._skip_depth:
            return
        else:
            if self._tile and self._n_depth:
                self.tiles[self._tile[0]]["n"] += data.strip()
            self.texts.append(data)

    def _external(self, tag: str, a: dict[str, str]) -> None:
        for key in ("src", "href", "srcset", "poster", "data", "action", "formaction"):
            value = a.get(key, "").strip().lower()
            if value.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:")):
                self.external.append("<%s %s=%s>" % (tag, key, a.get(key)))
        if tag == "link" and a.get("href") and not a["href"].startswith("data:"):
            self.external.append("<link href=%s>" % a["href"])
        style = a.get("style", "").replace(" ", "").lower()
        if "url(" in style and "url(data:" not in style:
            self.external.append("<%s style=...url(...)>" % tag)

    @property
    def text(self) -> str:
        return " ".join("".join(self.texts).split())


def parse_dom(dom: str) -> _Dom:
    parser = _Dom()
    parser.feed(dom)
    parser.close()
    return parser


def _problems(
    parsed: _Dom,
    expect_hosts: Iterable[str],
    expect_totals: dict[str, int],
    expect_text: Iterable[str],
    require_js: bool,
) -> list[str]:
    problems = []
    for status, count in expect_totals.items():
        tile = parsed.tiles.get(status)
        if tile is None:
            problems.append("no totals tile for status %r (tiles found: %s)" % (status, sorted(parsed.tiles)))
        elif tile["n"] != str(count) or tile.get("data-count", str(count)) != str(count):
            problems.append("totals tile %r shows %r (data-count %r), expected %d"
                            % (status, tile["n"], tile.get("data-count"), count))
    seen: dict[str, int] = {}
    for row in parsed.rows:
        seen[row["data-host"]] = seen.get(row["data-host"], 0) + 1
    expected = list(expect_hosts)
    missing = [h for h in expected if h not in seen]
    if missing:
        problems.append("%d host rows missing: %s" % (len(missing), ", ".join(missing[:20])))
    twice = sorted(h for h, n in seen.items() if n > 1)
    if twice:
        problems.append("host rows present more than once: %s" % ", ".join(twice[:20]))
    extra = sorted(set(seen) - set(expected))
    if expected and extra:
        problems.append("unexpected host rows: %s" % ", ".join(extra[:20]))
    page = parsed.text + " " + parsed.title
    for text in expect_text:
        if text not in page:
            problems.append("text not found on the page: %r" % text)
    if parsed.external:
        problems.append("external resources: %s" % ", ".join(parsed.external))
    if require_js and parsed.html_attrs.get("data-js") != "ready":
        problems.append("the page's script did not run to its end (<html data-js=\"ready\"> missing)")
    return problems


def check(
    html_path: str,
    screenshot_path: str,
    expect_hosts: list,
    expect_totals: dict,
    expect_text: list,
    require_js: bool = True,
    timeout: int = TIMEOUT,
    fragment: str = "",
) -> dict:
    """Screenshot ``html_path`` into ``screenshot_path`` and check its DOM as Chromium built it.

    ``fragment`` is appended to the URL (``status=failed`` presets the page's status filter).
    Returns what was found (``title``, ``hosts``, ``statuses``, ``visible``: the hosts whose
    row is not hidden, ``totals``, ``screenshot``, ``dom_chars``, ``js``). Raises
    :class:`CheckFailed` listing every problem, :class:`ChromiumMissing` when no browser is
    installed.
    """
    binary = find_chromium()
    if binary is None:
        raise ChromiumMissing("chromium is not installed (Debian package 'chromium': "
                              "bash scripts/bootstrap.sh --test installs it)")
    url = "file://" + urllib.parse.quote(os.path.abspath(html_path)) + ("#" + fragment if fragment else "")
    screenshot_path = os.path.abspath(screenshot_path)
    os.makedirs(os.path.dirname(screenshot_path), exist_ok=True)
    if os.path.exists(screenshot_path):
        os.unlink(screenshot_path)

    problems = []
    _chromium(binary, url, ["--screenshot=" + screenshot_path], timeout)
    try:
        with open(screenshot_path, "rb") as handle:
            head = handle.read(8)
        size = os.path.getsize(screenshot_path)
        if head != PNG_MAGIC or size < 5000:
            problems.append("screenshot %s is not a real PNG (%d bytes)" % (screenshot_path, size))
    except OSError as exc:
        problems.append("no screenshot written at %s: %s" % (screenshot_path, exc))

    dom = _chromium(binary, url, ["--dump-dom"], timeout).stdout.decode("utf-8", "replace")
    parsed = parse_dom(dom)
    if re.search(r"""url\(\s*['"]?\s*(https?:|//)|@import""", dom, re.IGNORECASE):
        problems.append("the page's CSS loads an external resource (url(http...) or @import)")
    if not parsed.rows and not parsed.tiles:
        problems.append("the dumped DOM has no host row and no totals tile (%d characters)" % len(dom))
    problems += _problems(parsed, expect_hosts, dict(expect_totals), expect_text, require_js)
    if problems:
        raise CheckFailed(problems)
    return {
        "title": parsed.title.strip(),
        "hosts": [r["data-host"] for r in parsed.rows],
        "statuses": {r["data-host"]: r.get("data-status", "") for r in parsed.rows},
        "visible": [r["data-host"] for r in parsed.rows if "hidden" not in r],
        "totals": {s: int(t["n"]) for s, t in parsed.tiles.items() if t["n"].isdigit()},
        "screenshot": screenshot_path,
        "dom_chars": len(dom),
        "js": parsed.html_attrs.get("data-js") == "ready",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("html", help="the report.html to open")
    ap.add_argument("--screenshot", required=True, help="where to write the PNG")
    ap.add_argument("--report", help="report.json: expected hosts and totals come from it")
    ap.add_argument("--host", action="append", default=[], help="a host whose row must be there (repeat)")
    ap.add_argument("--total", action="append", default=[], metavar="STATUS=N",
                    help="a totals tile to check (repeat)")
    ap.add_argument("--text", action="append", default=[], help="a text that must be on the page (repeat)")
    ap.add_argument("--no-js", action="store_true", help="do not require the page's script to have run")
    ap.add_argument("--fragment", default="", help="URL fragment, e.g. status=failed")
    ap.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds per Chromium run (default 60)")
    args = ap.parse_args(argv)

    hosts = list(args.host)
    totals: dict[str, int] = {}
    if args.report:
        with open(args.report, encoding="utf-8") as handle:
            report = json.load(handle)
        hosts += [h["host"] for h in report.get("hosts", []) if h.get("host") not in hosts]
        totals.update({k: int(v) for k, v in (report.get("totals") or {}).items()})
        if report.get("check_mode"):
            args.text.append("DRY RUN")
    for item in args.total:
        status, sep, count = item.rpartition("=")
        if not sep or not count.isdigit():
            ap.error("--total wants STATUS=N, got %r" % item)
        totals[status] = int(count)
    try:
        found = check(args.html, args.screenshot, hosts, totals, args.text, require_js=not args.no_js,
                      timeout=args.timeout, fragment=args.fragment)
    except ChromiumMissing as exc:
        print("chromium_check: %s" % exc, file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print("chromium_check: %s" % exc, file=sys.stderr)
        return 1
    print("chromium_check: OK - %d host rows, tiles %s, screenshot %s"
          % (len(found["hosts"]), found["totals"], found["screenshot"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
