"""Headless deployments: run the stage notebooks with papermill into a run folder that is a change record.

`python -m hakit run` validates the params once (nothing is touched on bad
input), executes the chosen notebooks in order into
``runs/<UTC time>-<cluster>/<notebook>.ipynb``, exports each to HTML, collects
each stage's record (see `hakit.record`), stops at the first failure naming the
stage, node and command, scans the whole folder for secret material and writes
``summary.json`` and ``index.html``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import lock, record, report, secretscan, site
from .notebook import repo_root, resolve
from .params import Params, load_params
from .errors import HakitError, load_error

FAILOVER_NOTEBOOK = "07_failover_tests.ipynb"
Progress = Callable[[str], None]


class RunFailed(HakitError, RuntimeError):
    """A stage failed or the secret scan found something; the run folder holds the evidence."""

    def __init__(self, message: str, folder: Path):
        super().__init__(message)
        self.folder = folder


def _print(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------ choosing notebooks


def stage_notebooks() -> list[Path]:
    """The deployment stages' notebooks in order (`stages.pipeline.NOTEBOOKS`): not the failover tests (those
    come with --failover), nor the day-2 operations of notebook 08 (run by hand, or alone with papermill)."""
    from .stages.pipeline import NOTEBOOKS

    return [p for p in (repo_root() / "notebooks" / f"{n}.ipynb" for n in NOTEBOOKS) if p.exists()]


def select(spec: str) -> list[Path]:
    """'all', '1-3', '2' or '1,3' -> the matching stage notebooks."""
    nbs = stage_notebooks()
    if spec == "all":
        return nbs
    wanted: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--stages {spec!r}: use 'all', a number, a range like 1-3, or a list like 1,3")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        wanted |= set(range(lo, hi + 1))
    if int(FAILOVER_NOTEBOOK[:2]) in wanted:
        raise ValueError(f"--stages {spec!r}: {FAILOVER_NOTEBOOK} is not a deployment stage; add --failover instead")
    day2 = [p.name for p in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
            if int(p.name[:2]) in wanted and p not in nbs and p.name != FAILOVER_NOTEBOOK]
    if day2:
        raise ValueError(f"--stages {spec!r}: {', '.join(day2)} is day-2 operations, not a deployment stage; run it "
                         "by hand in JupyterLab, or alone with papermill (see the README)")
    chosen = [p for p in nbs if int(p.name[:2]) in wanted]
    if not chosen:
        have = ", ".join(p.name for p in nbs)
        raise ValueError(f"--stages {spec!r} matches no notebook; there are: {have}")
    return chosen


def failover_notebook() -> Path:
    path = repo_root() / "notebooks" / FAILOVER_NOTEBOOK
    if not path.exists():
        raise ValueError(
            f"--failover: notebooks/{FAILOVER_NOTEBOOK} does not exist yet; run without --failover "
            "(the failover tests are being written)"
        )
    return path


# ------------------------------------------------------------------ failures

# RemoteError's message: "on <host>: `<command>` failed (exit N|no exit code)[:\n<stderr tail>][\n<hint>]"
REMOTE_RE = re.compile(r"^on (?P<node>[^:\s]+): `(?P<command>.*?)` failed \((?P<code>exit -?\d+|no exit code)\)", re.S)


def describe_error(ename: str, evalue: str, params: Params) -> dict[str, Any]:
    """Which node and command a notebook's exception names, from its type and message.

    A `hakit.remote.RemoteError` carries host, command and exit code; its message
    spells them in one fixed form (tested against the class), which is all that
    crosses the kernel boundary. Other hakit errors start with the node's name.
    """
    out: dict[str, Any] = {"ename": ename, "message": evalue.strip(), "node": None, "command": None, "exit_code": None}
    m = REMOTE_RE.match(evalue.strip())
    if m:
        code = m.group("code")
        out.update(node=m.group("node"), command=m.group("command"), exit_code=None if code == "no exit code" else int(code[5:]))
        return out
    for n in params.nodes:
        if evalue.startswith(f"{n.name}:") or evalue.startswith(f"on {n.name}:"):
            out["node"] = n.name
    return out


def _failure_line(nb: str, err: dict[str, Any]) -> str:
    if err.get("changed") is not None and err["command"]:
        code = f"exit {err['exit_code']}" if err["exit_code"] is not None else "no exit code"
        where = f" on {err['node']}" if err["node"] else ""
        return f"stage {nb} failed{where}: `{err['command']}` ({code})\n  " + err["message"].replace("\n", "\n  ")
    if err["command"]:
        code = f"exit {err['exit_code']}" if err["exit_code"] is not None else "no exit code"
        head = f"stage {nb} failed on {err['node']}: `{err['command']}` ({code})"
        rest = err["message"].split("\n", 1)[1:] or [""]
        return head + (("\n  " + rest[0].replace("\n", "\n  ")) if rest[0] else "")
    where = f" on {err['node']}" if err["node"] else ""
    return f"stage {nb} failed{where} in cell {err.get('cell')}: {err['ename']}: {err['message']}"


# ------------------------------------------------------------------ executing


def _kernel_manager_class(ipc_dir: str) -> type:
    """Kernels talk over Unix sockets in a private directory, not unencrypted loopback TCP.

    jupyter_client's default IPC path is relative to the working directory and its
    socket numbers start at 1, so two runs from one checkout could bind the same
    sockets; a 0700 directory per run (removed by the run) keeps each kernel its own.
    """
    import uuid

    from jupyter_client import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class IpcKernelManager(AsyncKernelManager):  # type: ignore[misc]
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        def _ip_default(self) -> str:
            return f"{ipc_dir}/{uuid.uuid4().hex[:12]}"

    return IpcKernelManager


def export_html(nb_path: Path) -> Path:
    """The executed notebook as a standalone HTML page, for reading without Jupyter."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(nb_path))
    out = nb_path.with_suffix(".html")
    out.write_text(body)
    return out


@dataclass
class Plan:
    """A validated run: params, notebooks, where it goes. Made before anything is touched."""

    params_path: Path
    params: Params
    notebooks: list[Path]
    dry_run: bool
    scenarios: str = ""  # the failover notebook's `scenarios` ("" leaves its default)
    load: str = ""  # the failover notebook's `load` ("" none)


def prepare_run(params_file: str, stages: str = "all", dry_run: bool = False, failover: bool = False,
                scenarios: str = "", load: str = "") -> Plan:
    """Validate everything a run needs; raises ParamsError/ValueError before any file or host is touched."""
    params_path = resolve(params_file).resolve()
    params = load_params(params_path)
    if scenarios:
        if not failover:
            raise ValueError(f"--scenarios {scenarios}: the scenarios are the failover notebook's; add --failover")
        from .failover.scenarios import select as select_scenarios

        select_scenarios(scenarios, fencing=params.pacemaker.stonith_enabled)  # unknown names fail here
    if load:
        if not failover:
            raise ValueError(f"--load {load}: the client load runs during the failover trials; add --failover")
        from .failover.load import parse_spec

        parse_spec(load)  # a bad value fails here
    if site.inventory(params).check_before_run:
        # A real site's key and known_hosts must be readable now, not in the first notebook.
        # (The lab writes its own when it comes up, so they are checked on connect.)
        from .remote import check_ssh_files

        check_ssh_files(params)
    notebooks = select(stages)
    if failover:
        notebooks.append(failover_notebook())
    return Plan(params_path, params, notebooks, dry_run, scenarios, load)


def _stage_entry(nb: Path, folder: Path, dry_run: bool) -> dict[str, Any]:
    """One stage in the summary, from its record (if it saved one)."""
    rec_dir = folder / nb.stem
    rec = record.load(rec_dir)
    entry: dict[str, Any] = {
        "notebook_name": nb.stem,
        "stage": rec["stage"] if rec else nb.stem,
        "notebook": nb.name,
        "html": None,
        "record": f"{nb.stem}/{record.RECORD_FILE}" if rec else None,
        "outcomes": rec["outcomes"] if rec else [],
        "verification": rec["verification"] if rec else None,
        "artifacts": [dict(a, path=f"{nb.stem}/{a['name']}") for a in rec["artifacts"]] if rec else [],
        "error": None,
        "duration_s": None,
    }
    if rec is None:
        entry["status"] = "no record"
    elif dry_run or rec["dry_run"]:
        entry["status"] = "dry run"
    else:
        entry["status"] = "changed" if any(o["outcome"] == "changed" for o in rec["outcomes"]) else "unchanged"
    return entry


class LineEcho:
    """A file-like sink for a notebook's stdout that hands each complete line to ``progress``
    (indented), so long work (the failover trials) is not silent in `hakit run`."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self.progress(f"    {line}")
        return len(text)

    def flush(self) -> None:
        return None


def _execute(nb: Path, dst: Path, plan: Plan, rec_dir: Path, ipc_dir: str,
             echo: Progress | None = None) -> dict[str, Any] | None:
    """Run one notebook; None on success, else what failed (the notebook is saved with its error).
    With ``echo``, each line the notebook prints is passed on as it comes."""
    import papermill as pm

    declared = pm.inspect_notebook(str(nb))
    parameters: dict[str, Any] = {"params_file": str(plan.params_path)}  # paths and flags only: never a secret
    if "dry_run" in declared:
        parameters["dry_run"] = plan.dry_run
    if "record_dir" in declared:
        parameters["record_dir"] = str(rec_dir)
    if plan.scenarios and "scenarios" in declared:
        parameters["scenarios"] = plan.scenarios
    if plan.load and "load" in declared:
        parameters["load"] = plan.load
    try:
        pm.execute_notebook(
            str(nb), str(dst), parameters=parameters, cwd=str(repo_root()), progress_bar=False,
            kernel_manager_class=_kernel_manager_class(ipc_dir),
            stdout_file=LineEcho(echo) if echo is not None else None,
        )
    except pm.PapermillExecutionError as e:
        saved = load_error(rec_dir)  # the stage driver's structured error.json, when the stage got that far
        if saved is not None:
            err = {"ename": saved["type"], "message": saved["message"].strip(), "node": saved["node"],
                   "command": saved["command"], "exit_code": saved["exit_code"], "changed": saved["changed"]}
        else:
            err = describe_error(e.ename, e.evalue, plan.params)
        err["cell"] = e.exec_count
        return err
    return None


def run(
    params_file: str,
    stages: str = "all",
    dry_run: bool = False,
    failover: bool = False,
    out_root: Path | None = None,
    html: bool = True,
    progress: Progress = _print,
    command: str | None = None,
    scenarios: str = "",
    load: str = "",
) -> Path:
    """Run the chosen notebooks into a new run folder; return it. Raises RunFailed (folder attached) on failure.
    ``scenarios`` picks the failover notebook's scenarios (with ``failover``; "" keeps its default)."""
    plan = prepare_run(params_file, stages, dry_run, failover, scenarios, load)  # bad input stops here
    params = plan.params
    started = datetime.now(timezone.utc)
    folder = (out_root or repo_root() / "runs") / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{params.cluster.name}"
    run_lock = None if dry_run else _take_run_lock(params, f"run-{folder.name}-{uuid.uuid4().hex[:6]}", progress)
    try:
        return _run(plan, folder, started, params_file, stages, dry_run, failover, html, progress, command)
    finally:
        if run_lock is not None:
            _release_run_lock(params, run_lock, progress)


def _take_run_lock(params: Params, owner: str, progress: Progress) -> str | None:
    """Hold the cluster lock for the whole run (its notebooks share it through the environment).

    A run that cannot reach the nodes yet goes on without it: each stage takes the lock for its
    own apply, and the first notebook reports the connection problem with its node and command.
    """
    from .remote import RemoteError, connect_all

    try:
        with connect_all(params) as hosts:
            lock.acquire(hosts, owner)
    except RemoteError as e:
        progress(f"run lock: not taken now ({str(e).splitlines()[0]}); each stage takes it for its own apply")
        return None
    os.environ[lock.RUN_ID_ENV] = owner
    progress(f"run lock: held on every node as {owner}")
    return owner


def _release_run_lock(params: Params, owner: str, progress: Progress = _print) -> None:
    """Release node by node: a node that is down (a failover trial may leave one off) keeps its lock."""
    from .remote import RemoteError, connect

    os.environ.pop(lock.RUN_ID_ENV, None)
    still = []
    for n in params.nodes:
        try:
            h = connect(params, n)
        except RemoteError:
            still.append(n.name)
            continue
        try:
            still += lock.release({n.name: h}, owner)
        finally:
            h.close()
    if still:
        progress(f"run lock: still held on {', '.join(still)} (unreachable now; a reboot clears it, or "
                 "`python -m hakit unlock --params <file>` once it is back)")


def _run(plan: Plan, folder: Path, started: datetime, params_file: str, stages: str, dry_run: bool, failover: bool,
         html: bool, progress: Progress, command: str | None) -> Path:
    params = plan.params
    folder.mkdir(parents=True)
    progress(f"run folder: {folder}")
    summary: dict[str, Any] = {
        "schema": 1,
        "run": folder.name,
        "cluster": params.cluster.name,
        "started": started.isoformat(timespec="seconds"),
        "finished": None,
        "by": report.who(),
        "command": command or f"hakit.run.run({params_file!r}, stages={stages!r}, dry_run={dry_run}, failover={failover})",
        "params_file": str(plan.params_path),
        "params_sha256": hashlib.sha256(plan.params_path.read_bytes()).hexdigest(),
        "params": report.masked_params(params),
        "dry_run": dry_run,
        "host_keys": report.host_keys(params),
        "stages": [],
        "ok": False,
        "error": None,
        "html_export_s": 0.0,
    }
    failure: str | None = None
    total = len(plan.notebooks)
    ipc_dir = tempfile.mkdtemp(prefix="hakit-kernels-")  # 0700: kernel sockets no other user can reach
    try:
        for i, nb in enumerate(plan.notebooks, 1):
            if failure:
                summary["stages"].append({"notebook_name": nb.stem, "stage": nb.stem, "status": "not run",
                                          "notebook": None, "html": None, "outcomes": [], "artifacts": []})
                continue
            dst, rec_dir = folder / nb.name, folder / nb.stem
            progress(f"[{i}/{total}] {nb.stem} ...")
            t0 = time.monotonic()
            # The failover trials print a line as each starts and ends: pass them on (~140 s otherwise silent).
            err = _execute(nb, dst, plan, rec_dir, ipc_dir, echo=progress if nb.name == FAILOVER_NOTEBOOK else None)
            duration = time.monotonic() - t0
            entry = _stage_entry(nb, folder, dry_run)
            entry["duration_s"] = round(duration, 2)
            if html and dst.exists():
                t1 = time.monotonic()
                entry["html"] = export_html(dst).name
                summary["html_export_s"] = round(summary["html_export_s"] + time.monotonic() - t1, 2)
            if err:
                entry["status"], entry["error"] = "failed", err
                if not entry["outcomes"]:
                    entry["outcomes"] = [
                        {"node": n.name, "outcome": "failed", "detail": f"`{err['command']}` failed"}
                        if n.name == err["node"] else
                        {"node": n.name, "outcome": "not recorded", "detail": "the stage stopped before saving its record"}
                        for n in params.nodes
                    ]
                failure = _failure_line(nb.stem, err) + f"\nthe notebook with the error: {dst}"
            summary["stages"].append(entry)
            nodes = ", ".join(f"{o['node']}: {o['outcome']}" for o in entry["outcomes"]) or "no record saved"
            progress(f"[{i}/{total}] {nb.stem}: {entry['status']} in {duration:.1f} s ({nodes})")
    except BaseException as e:  # Ctrl-C, a dead kernel: the report still says the run did not finish
        failure = failure or f"run stopped: {type(e).__name__}: {e}"
        raise
    finally:
        shutil.rmtree(ipc_dir, ignore_errors=True)
        summary["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        summary["error"] = failure
        scan, secrets = _scan(folder, params, progress)
        summary["secret_scan"] = scan.to_dict()
        final = failure
        for attempt in range(2):  # the report files are scanned too, after they are written
            final = failure
            if not scan.clean:
                found = "; ".join([str(f) for f in scan.findings] + scan.incomplete)
                final = (f"{failure}\n" if failure else "") + f"secret scan failed: {found}" + (
                    ". Delete this run folder; if the authkey leaked, run 02_authkey with rotate_key=True."
                    if scan.findings else ""
                )
            summary["error"], summary["ok"] = final, final is None
            summary["secret_scan"] = scan.to_dict()
            written = [report.write_summary(folder, summary), report.write_index(folder, summary)]
            if attempt == 0:
                before = len(scan.findings)
                secretscan.scan_folder(folder, secrets, scan, only=written)
                if len(scan.findings) == before:
                    break
        failure = final
        del secrets
        index = written[1]
        progress(f"report: {index}")
    if failure:
        raise RunFailed(failure + f"\nreport: {index}", folder)
    return folder


def _scan(folder: Path, params: Params, progress: Progress) -> tuple[secretscan.ScanReport, list[secretscan.Secret]]:
    """Look for the authkey (read from the nodes now, in memory) and params secrets in every file of the run."""
    rep = secretscan.ScanReport()
    secrets = secretscan.params_secrets(params)
    secrets += secretscan.fencing_secrets(params, rep)
    try:
        secrets += secretscan.authkey_secrets(params, rep)
    except Exception as e:  # noqa: BLE001 - an unexpected failure must not pass as a clean scan
        rep.incomplete.append(f"authkey: could not be read ({type(e).__name__})")
    try:
        secrets += secretscan.qdevice_secrets(params, rep)
    except Exception as e:  # noqa: BLE001 - as above
        rep.incomplete.append(f"qdevice PKCS#12: could not be read ({type(e).__name__})")
    secretscan.scan_folder(folder, secrets, rep)
    verdict = "clean" if rep.clean else "NOT CLEAN: " + "; ".join([str(f) for f in rep.findings] + rep.incomplete)
    progress(f"secret scan: {rep.files} files, {rep.bytes} bytes: {verdict}")
    return rep, secrets
