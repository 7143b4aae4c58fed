"""The run report: `summary.json` for machines and `index.html` for people, in the run folder.

Both hold the same facts: when and by whom, the params (secrets masked), the
pinned host keys, and per stage its outcome per node, duration and links to
the executed notebook, its HTML export and the files the stage recorded.
"""

from __future__ import annotations

import getpass
import html
import json
import os
import socket
from pathlib import Path
from typing import Any

import paramiko
from paramiko.hostkeys import HostKeyEntry

from .params import Params
from .remote import fingerprint, ssh_files

SUMMARY = "summary.json"
INDEX = "index.html"


def who() -> str:
    """user@host of whoever started the run (and the sudo user behind root, if any)."""
    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    via = f" (sudo from {sudo})" if sudo and sudo != user else ""
    return f"{user}@{socket.gethostname()}{via}"


def masked_params(params: Params) -> dict[str, Any]:
    """The params as JSON; pydantic shows SecretStr/SecretBytes values as '**********'."""
    return params.model_dump(mode="json")


def host_keys(params: Params) -> dict[str, Any]:
    """The host keys pinned in the known_hosts file the site's inventory names.

    Read locally; no host is contacted.
    """
    _, kh = ssh_files(params)
    out: dict[str, Any] = {"known_hosts": str(kh), "keys": []}
    try:
        lines = kh.read_text().splitlines()
    except FileNotFoundError:
        out["error"] = f"{kh} does not exist"
        return out
    except OSError as e:
        out["error"] = f"{kh} cannot be read: {e.strerror}"
        return out
    by_key: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        try:
            entry = HostKeyEntry.from_line(line)
        except (paramiko.SSHException, ValueError):
            entry = None
        if entry is None or entry.key is None:  # a comment, a blank line, or a key type paramiko lacks
            continue
        by_key.setdefault((entry.key.get_name(), fingerprint(entry.key)), []).extend(entry.hostnames)
    for (kind, fp), names in by_key.items():
        out["keys"].append({"hosts": sorted(set(names)), "type": kind, "fingerprint": fp})
    return out


def write_summary(folder: Path, summary: dict[str, Any]) -> Path:
    path = folder / SUMMARY
    tmp = folder / f".{SUMMARY}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------ index.html

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;text-align:left}
th{background:#f2f2f2}.ok{color:#2e7d32;font-weight:bold}.bad{color:#c62828;font-weight:bold}.muted{color:#777}
code,pre{background:#f7f7f7;padding:.1em .3em}pre{padding:.6em;overflow:auto}img{max-width:32em;border:1px solid #ddd}
"""

STATUS_CLASS = {"changed": "ok", "unchanged": "ok", "dry run": "muted", "failed": "bad", "not run": "muted"}


def _e(x: object) -> str:
    return html.escape(str(x))


def _link(href: str | None, text: str) -> str:
    return f'<a href="{_e(href)}">{_e(text)}</a>' if href else ""


def _stage_rows(stage: dict[str, Any]) -> str:
    links = [_link(stage.get("notebook"), "notebook"), _link(stage.get("html"), "HTML")]
    pictures = []
    for a in stage.get("artifacts", []):
        links.append(_link(a["path"], a["name"]))
        if a["name"].lower().endswith((".png", ".svg")):
            pictures.append(f'<br><img src="{_e(a["path"])}" alt="{_e(a["name"])}">')
    outcomes = "<br>".join(
        f"<b>{_e(o['node'])}</b>: {_e(o['outcome'])}" + (f' <span class="muted">({_e(o["detail"])})</span>' if o["detail"] else "")
        for o in stage.get("outcomes", [])
    ) or '<span class="muted">no outcome recorded</span>'
    ver = stage.get("verification")
    if ver is not None:
        bad = [c for c in ver["checks"] if not c["ok"]]
        outcomes += "<br>verify: " + (
            '<span class="ok">all checks pass</span>' if ver["ok"]
            else f'<span class="bad">{len(bad)} check(s) failed</span>: ' + "; ".join(
                _e(f"{c['node']}: {c['check']}: {c['detail']}") for c in bad
            )
        )
    err = stage.get("error")
    if err:
        outcomes += f'<br><span class="bad">error</span>: <pre>{_e(err["message"])}</pre>'
    status = stage["status"]
    dur = f"{stage['duration_s']:.1f} s" if stage.get("duration_s") is not None else "-"
    return (
        f"<tr><td><b>{_e(stage['notebook_name'])}</b></td>"
        f"<td class=\"{STATUS_CLASS.get(status, '')}\">{_e(status)}</td><td>{outcomes}</td><td>{dur}</td>"
        f"<td>{' · '.join(x for x in links if x)}{''.join(pictures)}</td></tr>"
    )


def render_index(summary: dict[str, Any]) -> str:
    """A self-contained page: readable in any browser, no Jupyter needed."""
    ok = summary["ok"]
    verdict = '<span class="ok">succeeded</span>' if ok else f'<span class="bad">FAILED</span>: {_e(summary.get("error") or "")}'
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>hakit run {_e(summary['run'])}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>Run {_e(summary['run'])}</h1>",
        f"<p>Cluster <b>{_e(summary['cluster'])}</b>: {verdict}"
        + (" (dry run: nothing applied)" if summary["dry_run"] else "") + "</p>",
        "<table>",
        f"<tr><th>started</th><td>{_e(summary['started'])}</td></tr>",
        f"<tr><th>finished</th><td>{_e(summary.get('finished') or '-')}</td></tr>",
        f"<tr><th>by</th><td>{_e(summary['by'])}</td></tr>",
        f"<tr><th>command</th><td><code>{_e(summary['command'])}</code></td></tr>",
        f"<tr><th>params file</th><td><code>{_e(summary['params_file'])}</code> (sha256 {_e(summary['params_sha256'][:16])}…)</td></tr>",
        "</table>",
        "<h2>Stages</h2><table><tr><th>notebook</th><th>result</th><th>outcome per node</th><th>time</th><th>files</th></tr>",
        *(_stage_rows(s) for s in summary["stages"]),
        "</table>",
    ]
    scan = summary.get("secret_scan")
    if scan:
        state = '<span class="ok">clean</span>' if scan["clean"] else '<span class="bad">NOT CLEAN</span>'
        parts.append(f"<h2>Secret scan</h2><p>{state}: {scan['files']} files, {scan['bytes']} bytes searched for "
                     f"{_e(', '.join(scan['secrets']) or 'no secrets (none known)')}.</p><ul>")
        parts += [f"<li>{_e(s)}</li>" for s in scan["sources"]]
        parts += [f'<li class="bad">{_e(f)}</li>' for f in scan["findings"] + scan["incomplete"]]
        parts.append("</ul>")
    hk = summary["host_keys"]
    parts.append(f"<h2>Pinned host keys</h2><p>from <code>{_e(hk['known_hosts'])}</code></p>")
    if hk.get("error"):
        parts.append(f'<p class="bad">{_e(hk["error"])}</p>')
    parts.append("<table><tr><th>hosts</th><th>type</th><th>fingerprint</th></tr>")
    parts += [f"<tr><td>{_e(', '.join(k['hosts']))}</td><td>{_e(k['type'])}</td><td><code>{_e(k['fingerprint'])}</code></td></tr>"
              for k in hk["keys"]]
    parts.append("</table>")
    parts.append("<h2>Params (secrets masked)</h2><pre>" + _e(json.dumps(summary["params"], indent=2)) + "</pre>")
    parts.append(f'<p class="muted">machine-readable: {_link(SUMMARY, SUMMARY)}</p></body></html>')
    return "\n".join(parts)


def write_index(folder: Path, summary: dict[str, Any]) -> Path:
    path = folder / INDEX
    path.write_text(render_index(summary))
    return path
