"""Change the live CIB the careful way: offline, verified, diffed, one patch, reversible.

The flow every CIB stage (04-06) uses:

1. ``gather``: query the live CIB (read-only).
2. ``plan`` (pure): place the stage's elements into a copy of it. Only the
   stage's own elements are added or replaced; everything else stays as is.
3. ``preview``: on a node, in a private temp dir, ``crm_verify`` the wanted
   CIB, ``crm_diff`` it against the live one, and ask ``crm_simulate`` what
   pacemaker would do. Nothing in the cluster changes.
4. ``apply``: save the live CIB to the run folder, refuse if the CIB's epoch
   moved since the plan (someone else edited it), then push one
   ``cibadmin --patch``. The patch carries the version it was made against,
   so pacemaker itself refuses it if anything changed in between.
5. ``rollback``: patch the CIB back to a saved copy and prove ``crm_diff``
   finds no configuration difference.

``crm_diff`` exits 0 when the files match and 1 when they differ; any other
code is an error. ``cibadmin --patch`` exits 103 (pcmk_err_old_data, "Update
was older than existing configuration") when the patch's source version is
not the live one. The same on pacemaker 3.0.0 (there a crm_diff of a missing file exits
65 and crm_verify of an invalid CIB 78: both are errors here).
"""

from __future__ import annotations

import copy
import hashlib
import html
import shlex
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from hakit.render.cib import BOOTSTRAP_SET, OP_DEFAULTS_SET, RSC_DEFAULTS_SET, Bundle, Item, OpDefault, Property, RscDefault
from hakit.runner import Result
from hakit.runner import Runner as Host  # any runner: SSH, local or a test fake

from .errors import HakitError

# Attributes of <cib> that change without anyone editing the configuration.
VERSION_ATTRS = frozenset(
    {"epoch", "num_updates", "admin_epoch", "cib-last-written", "update-origin", "update-client",
     "update-user", "have-quorum", "dc-uuid", "execution-date"}
)
SECTION_ORDER = ("crm_config", "rsc_defaults", "op_defaults", "nodes", "resources", "constraints")
PATCH_STALE = 103


class CibError(HakitError, RuntimeError):
    """The CIB could not be read, verified or changed; the message says what and where."""


class CibConflict(CibError):
    """The live CIB holds something that clashes with what the stage would add."""


class ConcurrentEdit(CibError):
    """The CIB changed between plan and apply; nothing was changed by us."""


@dataclass(frozen=True)
class CibVersion:
    admin_epoch: int
    epoch: int
    num_updates: int

    @classmethod
    def of(cls, root: ET.Element) -> "CibVersion":
        return cls(*(int(root.get(a, "0")) for a in ("admin_epoch", "epoch", "num_updates")))

    @property
    def config(self) -> tuple[int, int]:
        """What changes when (and only when) the configuration changes."""
        return (self.admin_epoch, self.epoch)

    def __str__(self) -> str:
        return f"{self.admin_epoch}.{self.epoch}.{self.num_updates}"


@dataclass(frozen=True)
class CibSnapshot:
    """One reading of the live CIB."""

    xml: str
    version: CibVersion
    config_sha256: str
    written_by: str  # "<client> on <origin> by <user> at <time>"

    @classmethod
    def parse(cls, text: str) -> "CibSnapshot":
        root = _parse(text, "cibadmin --query")
        return cls(
            xml=text,
            version=CibVersion.of(root),
            config_sha256=config_digest(root),
            written_by=(
                f"{root.get('update-client', '?')} on {root.get('update-origin', '?')} "
                f"by {root.get('update-user', '?')} at {root.get('cib-last-written', '?')}"
            ),
        )


def _parse(text: str, what: str) -> ET.Element:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise CibError(f"{what}: not CIB XML ({e}); output starts: {text[:120]!r}") from None
    if root.tag != "cib" or root.find("configuration") is None:
        raise CibError(f"{what}: expected <cib> with <configuration>, got <{root.tag}>")
    return root


def canonical(e: ET.Element) -> tuple:
    """Order-insensitive for attributes, order-sensitive for children, blind to whitespace."""
    return (e.tag, tuple(sorted(e.attrib.items())), tuple(canonical(c) for c in e))


def config_digest(root: ET.Element) -> str:
    conf = root.find("configuration")
    assert conf is not None
    return hashlib.sha256(repr(canonical(conf)).encode()).hexdigest()


def same_configuration(a_xml: str, b_xml: str) -> bool:
    """True when two CIBs have the same <configuration> (status and version fields ignored)."""
    return config_digest(_parse(a_xml, "first CIB")) == config_digest(_parse(b_xml, "second CIB"))


# ---------------------------------------------------------------- plan (pure)


@dataclass(frozen=True)
class CibChange:
    key: str  # e.g. "primitive vip"
    action: str  # "add", "update", "set", "unset"
    detail: str


@dataclass
class CibPlan:
    """What a stage would change in the CIB, and the whole wanted CIB."""

    bundle: Bundle
    base: CibSnapshot
    wanted_xml: str
    changes: list[CibChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(c.key)}</td><td>{c.action}</td><td>{html.escape(c.detail)}</td></tr>"
            for c in self.changes
        ) + "".join(f"<tr><td>{html.escape(k)}</td><td>no change</td><td>already as wanted</td></tr>" for k in self.unchanged)
        head = f"<h4>CIB plan: {html.escape(self.bundle.stage)} (live CIB version {self.base.version})</h4>"
        return head + f"<table><tr><th>element</th><th>action</th><th>detail</th></tr>{rows}</table>"

    def __str__(self) -> str:
        lines = [f"{c.key}: {c.action} ({c.detail})" for c in self.changes]
        lines += [f"{k}: no change" for k in self.unchanged]
        return "\n".join(lines)


def _section(conf: ET.Element, name: str) -> ET.Element:
    found = conf.find(name)
    if found is not None:
        return found
    new = ET.Element(name)
    # Keep pacemaker's schema order of sections.
    order = list(SECTION_ORDER)
    pos = len(conf)
    for i, child in enumerate(list(conf)):
        if child.tag in order and order.index(child.tag) > order.index(name):
            pos = i
            break
    conf.insert(pos, new)
    return new


def _nvset(conf: ET.Element, section: str, set_tag: str, set_id: str) -> ET.Element:
    sec = _section(conf, section)
    for s in sec.findall(set_tag):
        if s.get("id") == set_id:
            return s
    s = ET.Element(set_tag, {"id": set_id})
    sec.insert(0, s)
    return s


def _ids(e: ET.Element) -> set[str]:
    return {x.get("id") for x in e.iter() if x.get("id")}  # type: ignore[misc]


def _flat(e: ET.Element, path: str = "") -> set[str]:
    here = f"{path}/{e.tag}" + (f"[{e.get('id')}]" if e.get("id") else "")
    out = {f"{here}@{k}={v}" for k, v in e.attrib.items() if k != "id"}
    for c in e:
        out |= _flat(c, here)
    return out or {here}


def _describe(old: ET.Element, new: ET.Element) -> str:
    a, b = _flat(old), _flat(new)
    gone, added = sorted(a - b), sorted(b - a)
    parts = [f"-{x.split('/', 2)[-1]}" for x in gone[:3]] + [f"+{x.split('/', 2)[-1]}" for x in added[:3]]
    more = len(gone) + len(added) - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _nvpair_item(conf: ET.Element, item: Property | RscDefault | OpDefault, plan: CibPlan) -> None:
    if isinstance(item, Property):
        s = _nvset(conf, "crm_config", "cluster_property_set", BOOTSTRAP_SET)
    elif isinstance(item, OpDefault):
        s = _nvset(conf, "op_defaults", "meta_attributes", OP_DEFAULTS_SET)
    else:
        s = _nvset(conf, "rsc_defaults", "meta_attributes", RSC_DEFAULTS_SET)
    for nv in s.findall("nvpair"):
        if nv.get("name") == item.name:
            if nv.get("value") == item.value:
                plan.unchanged.append(item.key)
            else:
                plan.changes.append(CibChange(item.key, "set", f"{nv.get('value')} -> {item.value}"))
                nv.set("value", item.value)
            return
    s.append(item.xml())
    plan.changes.append(CibChange(item.key, "set", f"unset (pacemaker default) -> {item.value}"))


def _unset_property(conf: ET.Element, name: str, plan: CibPlan) -> None:
    """The stage owns this crm_config property at pacemaker's default: drop it where it is set."""
    key = f"property {name}"
    sets = [s for s in conf.iterfind("crm_config/cluster_property_set") if s.get("id") == BOOTSTRAP_SET]
    found = [(s, nv) for s in sets for nv in s.findall("nvpair") if nv.get("name") == name]
    for s, nv in found:
        plan.changes.append(CibChange(key, "unset", f"{nv.get('value')} -> unset (pacemaker default)"))
        s.remove(nv)
    if not found:
        plan.unchanged.append(key)


def plan(bundle: Bundle, base: CibSnapshot) -> CibPlan:
    """Pure: the live CIB with this stage's elements added or replaced in place."""
    root = copy.deepcopy(_parse(base.xml, "live CIB"))
    conf = root.find("configuration")
    assert conf is not None
    p = CibPlan(bundle, base, "")
    for item in bundle.items:
        if isinstance(item, (Property, RscDefault, OpDefault)):
            _nvpair_item(conf, item, p)
            continue
        new = item.xml()
        item_id = new.get("id")
        existing = next((x for x in conf.iter() if x.get("id") == item_id), None)
        sec = _section(conf, item.section)
        if existing is not None:
            parent = next(x for x in conf.iter() if existing in list(x))
            if parent is not sec:
                raise CibConflict(
                    f"{item.key}: the CIB already has an element with id {item_id!r} inside "
                    f"<{parent.tag} id={parent.get('id')!r}>; this stage owns that id at the top of "
                    f"<{item.section}>. Remove or rename the other element first (crm configure delete)."
                )
            if existing.tag != new.tag:
                # e.g. a <group id="vip"> holding other resources: never replace it with our primitive.
                raise CibConflict(
                    f"{item.key}: the CIB already has a <{existing.tag}> with id {item_id!r} in <{item.section}>, "
                    f"not a <{new.tag}>; this stage will not replace it. Remove or rename it first "
                    "(crm configure delete)."
                )
            if canonical(existing) == canonical(new):
                p.unchanged.append(item.key)
                continue
            elsewhere = (_ids(conf) - _ids(existing)) & _ids(new)
            if elsewhere:
                raise CibConflict(f"{item.key}: id(s) {sorted(elsewhere)} already exist elsewhere in the CIB")
            p.changes.append(CibChange(item.key, "update", _describe(existing, new)))
            idx = list(parent).index(existing)
            parent.remove(existing)
            parent.insert(idx, new)
        else:
            clash = _ids(conf) & _ids(new)
            if clash:
                raise CibConflict(
                    f"{item.key}: id(s) {sorted(clash)} already exist in the CIB in another element; "
                    "remove or rename them first (crm configure show shows where)"
                )
            sec.append(new)
            p.changes.append(CibChange(item.key, "add", " ".join(item.crm().replace("\\\n", " ").split())[:160]))
    for name in bundle.unset:
        _unset_property(conf, name, p)
    if p.changes:
        _next_version(root, base.version)
    ET.indent(root, "  ")
    p.wanted_xml = ET.tostring(root, encoding="unicode") + "\n"
    return p


def _next_version(root: ET.Element, live: CibVersion) -> None:
    """Mark a wanted CIB one epoch past the live one: pacemaker refuses a patch that leads to no newer version."""
    root.set("epoch", str(live.epoch + 1))
    root.set("num_updates", "0")


def managed_missing(bundle: Bundle, live_xml: str) -> list[str]:
    """Keys of this stage's elements that are absent from, or differ in, a CIB (for verify)."""
    return [c.key for c in plan(bundle, CibSnapshot.parse(live_xml)).changes]


# ---------------------------------------------------------------- on a node


def query(host: Host) -> CibSnapshot:
    r = host.run("cibadmin --query", check=False, timeout=60)
    if r.exit_code != 0:
        raise CibError(
            f"{host.name}: cibadmin --query failed (exit {r.exit_code}): {(r.stderr or r.stdout).strip()[:300]}; "
            "is pacemaker running? (run 03_corosync_rings first)"
        )
    return CibSnapshot.parse(r.stdout)


@dataclass
class Preview:
    """What the tools say about a plan before anything is applied."""

    verify_ok: bool
    verify_output: str
    patch_xml: str  # crm_diff output; "" when nothing differs
    transition: str  # crm_simulate's transition summary
    verify_exit: int | None = None  # crm_verify's exit code (0: clean)
    verify_command: str = ""  # the crm_verify command line, as run on the node

    def _repr_html_(self) -> str:
        verdict = "crm_verify: clean" if self.verify_ok else "crm_verify: ERRORS"
        return (
            f"<h4>{verdict}</h4><pre>{html.escape(self.verify_output or '(no output)')}</pre>"
            f"<h4>crm_diff: live CIB -> wanted CIB</h4><pre>{html.escape(self.patch_xml or '(no difference)')}</pre>"
            f"<h4>crm_simulate: predicted transition</h4><pre>{html.escape(self.transition or '(nothing to do)')}</pre>"
        )


class Workdir:
    """A private temp dir on a node for CIB files; removed on exit."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.path = ""

    def __enter__(self) -> "Workdir":
        self.path = self.host.run("mktemp -d /run/hakit-cib.XXXXXX").stdout.strip()
        return self

    def put(self, name: str, text: str) -> str:
        path = f"{self.path}/{name}"
        self.host.write_bytes(path, text.encode(), mode=0o600)
        return path

    def __exit__(self, *exc: object) -> None:
        if self.path.startswith("/run/hakit-cib."):
            self.host.run(["rm", "-rf", "--", self.path], check=False)


def _crm_diff(host: Host, old: str, new: str) -> str:
    r = host.run(f"crm_diff --original {shlex.quote(old)} --new {shlex.quote(new)}", check=False)
    if r.exit_code == 0:
        return ""
    if r.exit_code == 1:
        return r.stdout
    raise CibError(f"{host.name}: crm_diff failed (exit {r.exit_code}): {r.stderr.strip()[:300]}")


def transition_summary(simulate_out: str) -> str:
    lines = simulate_out.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Transition Summary"))
    except StopIteration:
        return ""
    body = []
    for ln in lines[start + 1:]:
        if ln and not ln.startswith(" "):
            break
        if ln.strip():
            body.append(ln.strip())
    return "\n".join(body)


def preview(host: Host, p: CibPlan) -> Preview:
    """Verify, diff and simulate the wanted CIB on ``host`` without changing the cluster."""
    with Workdir(host) as wd:
        live = wd.put("live.xml", p.base.xml)
        wanted = wd.put("wanted.xml", p.wanted_xml)
        verify_cmd = f"crm_verify --verbose --xml-file {wanted}"
        v = host.run(verify_cmd, check=False)
        patch = _crm_diff(host, live, wanted)
        # Without --save-output, crm_simulate keeps its working copy as shadow.<pid> in pacemaker's
        # own CIB directory (/var/lib/pacemaker/cib) while it runs: a dry run would write there.
        sim = host.run(f"crm_simulate --xml-file {wanted} --save-output {wd.path}/simulated.xml --simulate",
                       check=False)
    return Preview(v.exit_code == 0, (v.stdout + v.stderr).strip(), patch, transition_summary(sim.stdout),
                   v.exit_code, verify_cmd)


@dataclass
class ApplyRecord:
    """What apply did: the saved CIBs and the patch, for the run folder and rollback."""

    changed: bool
    before: Path
    after: Path | None = None
    patch: Path | None = None
    version_before: CibVersion | None = None
    version_after: CibVersion | None = None
    detail: str = ""


def save(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _push(host: Host, live_xml: str, target_xml: str) -> tuple[str, Result | None]:
    """crm_diff live -> target and, if they differ, send that patch once; (patch, cibadmin's result or None)."""
    with Workdir(host) as wd:
        patch = _crm_diff(host, wd.put("live.xml", live_xml), wd.put("target.xml", target_xml))
        if not patch:
            return "", None
        return patch, host.run(f"cibadmin --patch --xml-file {wd.put('patch.xml', patch)}", check=False, timeout=120)


def apply(host: Host, p: CibPlan, save_dir: Path, prefix: str = "", retries: int = 3) -> ApplyRecord:
    """Push the plan as one versioned patch, or nothing if the CIB already matches.

    Saves ``<prefix>cib-before.xml`` (always), and when it changes the CIB
    ``<prefix>cib-after.xml`` and ``<prefix>cib.patch.xml``. Raises
    ConcurrentEdit, changing nothing, if the configuration moved since the plan.
    """
    for attempt in range(retries):
        live = query(host)
        before = save(live.xml, save_dir / f"{prefix}cib-before.xml")
        if live.version.config != p.base.version.config or live.config_sha256 != p.base.config_sha256:
            raise ConcurrentEdit(
                f"the CIB changed between plan and apply: epoch {p.base.version} -> {live.version}, "
                f"last written by {live.written_by}. Nothing was changed; re-run the notebook from the top "
                "to plan against the current CIB."
            )
        # Same configuration as planned: re-base the wanted CIB on this reading (only status differs).
        patch, r = _push(host, live.xml, plan(p.bundle, live).wanted_xml)
        if r is None:
            return ApplyRecord(False, before, version_before=live.version, detail="CIB already as wanted")
        if r.exit_code == PATCH_STALE:
            # Status moved (num_updates) or someone edited: look again; the check above tells which.
            time.sleep(0.2)
            continue
        if r.exit_code != 0:
            raise CibError(
                f"{host.name}: cibadmin --patch failed (exit {r.exit_code}): {(r.stderr or r.stdout).strip()[:300]}; "
                f"the CIB was saved before the attempt at {before}"
            )
        after_snap = query(host)
        return ApplyRecord(
            True,
            before,
            save(after_snap.xml, save_dir / f"{prefix}cib-after.xml"),
            save(patch, save_dir / f"{prefix}cib.patch.xml"),
            live.version,
            after_snap.version,
            f"patched CIB {live.version} -> {after_snap.version}",
        )
    raise CibError(f"{host.name}: the CIB kept changing under the patch ({retries} attempts); nothing was applied")


def config_diff(host: Host, old_xml: str, new_xml: str) -> str:
    """crm_diff of two CIBs' configurations (version attributes of <cib> removed first)."""
    with Workdir(host) as wd:
        return _crm_diff(host, wd.put("a.xml", strip_versions(old_xml)), wd.put("b.xml", strip_versions(new_xml)))


def strip_versions(cib_xml: str) -> str:
    root = _parse(cib_xml, "CIB")
    for a in VERSION_ATTRS:
        root.attrib.pop(a, None)
    st = root.find("status")
    if st is not None:
        root.remove(st)
    return ET.tostring(root, encoding="unicode")


def rollback(host: Host, saved: Path) -> str:
    """Restore the configuration saved in ``saved`` (a cib-before file); return the proof.

    Pushes one patch from the live CIB to the saved configuration (the live
    status is kept), then checks that ``crm_diff`` finds no configuration
    difference apart from version fields. Raises CibError if any remains.
    """
    saved_xml = saved.read_text()
    saved_conf = _parse(saved_xml, str(saved)).find("configuration")
    for attempt in range(3):
        live = query(host)
        if same_configuration(saved_xml, live.xml):
            break  # nothing to restore: the epoch stays as it is
        target = _parse(live.xml, "live CIB")  # a fresh tree: the live status with the saved configuration
        target.remove(target.find("configuration"))  # type: ignore[arg-type]
        target.insert(0, copy.deepcopy(saved_conf))  # type: ignore[arg-type]
        _next_version(target, live.version)
        _, r = _push(host, live.xml, ET.tostring(target, encoding="unicode"))
        if r is None or r.exit_code == 0:
            break
        if r.exit_code != PATCH_STALE:
            raise CibError(f"{host.name}: rollback patch failed (exit {r.exit_code}): {r.stderr.strip()[:300]}")
        time.sleep(0.2)
    else:
        raise CibError(f"{host.name}: the CIB kept changing under the rollback patch (3 attempts); CIB left as it was")
    now = query(host)
    remaining = config_diff(host, saved_xml, now.xml)
    if remaining:
        raise CibError(f"rollback to {saved} left configuration differences:\n{remaining}")
    return f"configuration restored from {saved.name}; crm_diff against it is empty (CIB now {now.version})"


__all__ = [
    "CibError", "CibConflict", "ConcurrentEdit", "CibSnapshot", "CibPlan", "CibChange", "Preview",
    "ApplyRecord", "plan", "query", "preview", "apply", "rollback", "config_diff", "same_configuration",
    "managed_missing", "Item",
]
