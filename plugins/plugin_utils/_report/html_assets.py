# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inline CSS and script of report.html (see docs/report.md, "Reading report.html").

This API is private to the sne.guichet collection; it may change without notice.
The page is complete without the script: it only adds a status filter, a search box and
column sort. No external resource (fonts, images, links) is used.
"""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """
:root{--fg:#1d2329;--muted:#5b6670;--line:#d5dade;--bg:#fff;--soft:#f3f5f7;
--failed:#b71c1c;--unconfigured:#6a1b9a;--not-reached:#37474f;--attention:#c25e00;
--pending:#78909c;--changed:#1565c0;--ok:#2e7d32;--unknown:#000}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;padding:1.25rem 1.5rem 2rem;color:var(--fg);background:var(--bg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans","Liberation Sans",Arial,sans-serif}
h1{font-size:1.6rem;margin:0 0 .25rem;line-height:1.2}
h1 .run{font-weight:400;color:var(--muted);font-size:1.05rem;white-space:nowrap}
h2{font-size:1.25rem;margin:1.75rem 0 .6rem;padding-bottom:.25rem;border-bottom:2px solid var(--line)}
h3{font-size:1.05rem;margin:1.1rem 0 .3rem}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;
font-size:.86em}
a{color:#0b57a4}
.dryrun{margin:0 0 1rem;padding:.8rem 1rem;border:4px solid #111;font-weight:800;font-size:1.5rem;
letter-spacing:.02em;color:#111;background:repeating-linear-gradient(-45deg,#ffd54f 0 18px,#ffe082 18px 36px)}
.dryrun small{display:block;font-size:.95rem;font-weight:600;letter-spacing:0}
.verdict{font-size:1.15rem;font-weight:700;margin:.4rem 0 .8rem}
.verdict.bad{color:var(--failed)}.verdict.good{color:var(--ok)}.verdict.wait{color:var(--muted)}
.revocation{display:inline-block;margin:.2rem 0 .9rem;padding:.45rem .8rem;border-radius:6px;font-weight:700;
font-size:1.1rem;border:2px solid}
.revocation[data-state=before]{color:#7a4b00;background:#fff6e0;border-color:#e0a100}
.revocation[data-state=soon]{color:#fff;background:#c62828;border-color:#8e0000}
.revocation[data-state=after]{color:#fff;background:#4a0d0d;border-color:#000}
.revocation[data-state=unknown]{color:var(--fg);background:var(--soft);border-color:var(--line)}
.revocation small{font-weight:400;font-size:.85rem}
.crl{margin:0 0 .9rem;padding-left:1.2rem}.crl li[data-revoked=true]{font-weight:700}
.totals{display:flex;flex-wrap:wrap;gap:.6rem;margin:.3rem 0 1rem}
.total{flex:1 1 8.5rem;max-width:13rem;min-width:7.5rem;padding:.55rem .8rem .6rem;border-radius:8px;
color:#fff;background:var(--c);border:2px solid var(--c);font-weight:600;font-size:1rem;line-height:1.15}
.total .n{display:block;font-size:2.6rem;font-weight:800;line-height:1.05;font-variant-numeric:tabular-nums}
.total.zero{background:var(--soft);color:var(--muted);border-color:var(--line);border-left:8px solid var(--c)}
.total.all{background:#fff;color:var(--fg);border-color:var(--fg)}
.total[data-status=pending]:not(.zero){color:#102027}
html[data-js=ready] .total[data-status]{cursor:pointer}
[data-status=failed]{--c:var(--failed)}[data-status=unconfigured]{--c:var(--unconfigured)}
[data-status="not reached"]{--c:var(--not-reached)}[data-status=attention]{--c:var(--attention)}
[data-status=pending]{--c:var(--pending)}[data-status=changed]{--c:var(--changed)}[data-status=ok]{--c:var(--ok)}
.facts{display:flex;flex-wrap:wrap;gap:.5rem 2.5rem;align-items:flex-start;padding:.6rem .8rem;
background:var(--soft);border:1px solid var(--line);border-radius:8px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:0;flex:0 1 27rem}
.meta dt{color:var(--muted)}.meta dd{margin:0;overflow-wrap:anywhere}
.deployed{border-collapse:collapse;margin:0;flex:1 1 36rem}
.deployed caption{text-align:left;font-weight:700;padding:0 .6rem .2rem}
.deployed th,.deployed td{text-align:left;vertical-align:top;padding:.3rem .6rem;
border-bottom:1px solid var(--line)}
.deployed th{white-space:nowrap;color:var(--muted);font-weight:600}
.fpfull{overflow-wrap:normal;font-weight:600}
.badge{display:inline-block;padding:.05rem .4rem;border-radius:999px;font-size:.82rem;font-weight:700;
color:#fff;background:var(--c,#000);white-space:nowrap}
.badge[data-status=pending]{color:#102027}
.group{border-left:6px solid var(--c,#000);padding:.1rem 0 .4rem .9rem;margin:0 0 1rem}
.group h3{margin-top:.3rem}.group .help{margin:.1rem 0 .4rem;color:var(--muted)}
.rerun{margin:.3rem 0 .5rem;font-size:.9rem}
.rerun code{display:block;padding:.3rem .5rem;background:var(--soft);border:1px solid var(--line);
border-radius:4px;overflow-wrap:anywhere;user-select:all}
table.list,table.hosts{border-collapse:collapse;width:100%}
table.list th,table.list td,table.hosts th,table.hosts td{text-align:left;vertical-align:top;
padding:.35rem .5rem;border-bottom:1px solid var(--line);overflow-wrap:anywhere}
table.list th,table.hosts th{background:var(--soft);font-size:.85rem;color:#37424b;position:sticky;top:0;
z-index:1}
table.hosts{table-layout:fixed;font-size:.9rem}
table.hosts tbody tr{border-left:5px solid var(--c,#000)}
table.hosts tbody tr:nth-child(even){background:#fafbfc}
td.host{font-weight:700}
.reason{font-weight:600}
.none{color:#98a2ab}
.store{margin:0 0 .35rem;padding:0 0 .3rem;border-bottom:1px dashed var(--line)}
.store:last-child{border-bottom:0;margin-bottom:0;padding-bottom:0}
.store .path{font-weight:600}
.store .gen{white-space:nowrap}
.store.failed .gen,.store .msg{color:var(--failed)}
.store .msg{font-weight:600}
.tag{display:inline-block;padding:0 .35rem;border-radius:4px;font-size:.76rem;border:1px solid currentColor;
white-space:nowrap;margin-left:.25rem}
.tag.changed{color:var(--changed)}.tag.failed{color:var(--failed)}.tag.same{color:var(--muted)}
.tag.earlier{color:var(--attention)}
.fp{white-space:nowrap}
.entry .match{color:var(--ok);font-weight:700}.entry.out{color:var(--muted)}
.runid{font-size:.85rem;overflow-wrap:anywhere}
.badge{max-width:100%;overflow:hidden;text-overflow:ellipsis}
.fp{border-bottom:1px dotted var(--muted);cursor:help}
ul.paths{margin:.1rem 0 .3rem;padding-left:1.1rem}
.label{color:var(--muted);font-size:.8rem;font-weight:600}
.bad-label{color:var(--failed)}
#controls{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin:0 0 .5rem}
#controls select,#controls input{font:inherit;padding:.25rem .4rem}
th button.sort{all:unset;cursor:pointer;display:block;width:100%}
th button.sort::after{content:" \\2195";color:#9aa4ad}
th[aria-sort=ascending] button.sort::after{content:" \\25B2";color:var(--fg)}
th[aria-sort=descending] button.sort::after{content:" \\25BC";color:var(--fg)}
[hidden]{display:none!important}
footer{margin-top:2rem;color:var(--muted);font-size:.85rem}
@media (max-width:820px){
body{padding:.75rem}
.total{flex-basis:6.5rem;min-width:6rem}.total .n{font-size:2rem}
.total{font-size:.85rem}
table.hosts,table.list,table.hosts tbody,table.list tbody,table.hosts tr,table.list tr,table.hosts td,
table.list td{display:block;width:auto!important}
table.hosts thead,table.list thead,table.hosts colgroup{display:none}
table.hosts tbody tr{margin:0 0 .8rem;border:1px solid var(--line);border-left:6px solid var(--c,#000)}
table.list tbody tr{margin:0 0 .5rem;border:1px solid var(--line)}
table.hosts td,table.list td{border-bottom:1px solid #eef0f2}
td[data-label]::before{content:attr(data-label);display:block;font-size:.75rem;color:var(--muted);
font-weight:600}
.deployed,.deployed tbody,.deployed tr,.deployed th,.deployed td{display:block;flex-basis:auto;width:100%}
table.list td:empty,table.hosts td.empty{display:none}
.meta{grid-template-columns:1fr}.meta dt{margin-top:.3rem}
}
@media print{
@page{margin:12mm}
html{font-size:10.5px}body{padding:0;font-size:1rem}
#controls,script,th button.sort::after{display:none!important}
table.hosts{font-size:.85rem}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.dryrun{background:#ffe082}
table.list th,table.hosts th{position:static}
tr,.group,.total{break-inside:avoid}
h2{break-after:avoid}
a{color:inherit;text-decoration:none}
}
"""

JS = """
(function () {
  var table = document.getElementById("hosts-table");
  if (!table || !table.tBodies.length) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var select = document.getElementById("status-filter");
  var search = document.getElementById("host-filter");
  var shown = document.getElementById("shown-count");
  function apply() {
    var want = select.value, text = search.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (row) {
      var status = row.getAttribute("data-status");
      var keep = want === "all" ||
        (want === "action" ? row.getAttribute("data-action") === "1" : status === want);
      if (keep && text) { keep = row.textContent.toLowerCase().indexOf(text) >= 0; }
      row.hidden = !keep;
      if (keep) { n += 1; }
    });
    shown.textContent = n + " of " + rows.length + " hosts shown";
    try {
      history.replaceState(null, "", want === "all" ? location.pathname + location.search
        : "#status=" + encodeURIComponent(want));
    } catch (e) { /* file:// in some browsers */ }
  }
  var asked = /^#status=(.+)$/.exec(location.hash);
  if (asked) {
    var value = decodeURIComponent(asked[1]);
    Array.prototype.forEach.call(select.options, function (o) {
      if (o.value === value) { select.value = value; }
    });
  }
  select.addEventListener("change", apply);
  search.addEventListener("input", apply);
  Array.prototype.forEach.call(document.querySelectorAll(".total[data-status]"), function (tile) {
    tile.setAttribute("role", "button");
    tile.tabIndex = 0;
    function pick() {
      var status = tile.getAttribute("data-status");
      select.value = select.value === status ? "all" : status;
      apply();
      table.scrollIntoView();
    }
    tile.addEventListener("click", pick);
    tile.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); }
    });
  });
  function key(row, i) {
    var cell = row.cells[i];
    if (!cell) { return ""; }
    var k = cell.getAttribute("data-sort");
    return k !== null ? k : cell.textContent.trim().toLowerCase();
  }
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, i) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    while (th.firstChild) { button.appendChild(th.firstChild); }
    th.appendChild(button);
    button.addEventListener("click", function () {
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = key(a, i), y = key(b, i);
        if (x !== y) { return (x < y ? -1 : 1) * dir; }
        return Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  document.getElementById("controls").hidden = false;
  apply();
  document.documentElement.setAttribute("data-js", "ready");
})();
"""
