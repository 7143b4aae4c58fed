"""Evidence about lab nodes gathered by the tests themselves, never through the product.

A lab node is a container on this machine, so its whole filesystem can be read at
``/proc/<its init>/root`` and its own tools run in its namespaces with ``nsenter``:
looking needs no SSH session (which the product uses, and which sshd would log). What
is read here:

- `files`: every inode of the node's filesystem (type, mode, owner, size, inode number,
  mtime and ctime in ns; a sha256 for files under `DIGESTED`). A process cannot set a
  ctime, so an unchanged ctime and inode mean nothing wrote, chmod-ed, chown-ed or
  replaced that file; a directory's times move when an entry is created, renamed or
  removed in it, so even a temp file that came and went shows on its directory.
- `units`, `cib`, `packages`: systemd's view of the cluster units (an InvocationID
  changes at every start), the whole CIB (epoch and num_updates included), dpkg's list.
- The command log (`Instrumented`): root's login shell on the node becomes a wrapper that
  saves each command line sshd hands it, in full, then runs it with bash; sshd logs
  each command it accepts (a 500-character prefix; its `LogVerbose` for the one audit
  line) and sftp-server (`-l INFO`) logs every open, write, rename, remove and chmod.
  The three are independent of each other and of the product, and sshd's count proves
  the wrapper saw every command.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hakit.lab import Lab
from hakit.profiles import get_profile

# Paths a node's walk skips: kernel views, nspawn's own mounts, and the command log itself.
SKIPPED = ("/proc", "/sys", "/dev", "/run/host", "/var/log/hakit-test")
# Trees whose files also get a content digest: every place a stage writes (see lib/hakit/stages
# and fencing.py) plus where pacemaker keeps the CIB on disk and systemd keeps unit enablement.
DIGESTED = ("/etc/network", "/etc/corosync", "/etc/hakit", "/etc/apache2", "/etc/systemd/system",
            "/usr/local/sbin", "/var/www", "/var/lib/hakit", "/var/lib/pacemaker/cib", "/run/hakit")
# What changes on a node while nothing is asked of it, or at any SSH login, and why.
LOGIN_EFFECTS = {
    "/run/motd.dynamic": "pam_motd rewrites it at every SSH login",
    "/run": "pam_motd renames motd.dynamic into it at every login; a dry run's CIB scratch dirs come and go here",
    "/tmp": "a dry run's bonding scratch dir (mktemp -d) comes and goes here",
}
# Logs that grow by themselves or when something reads: journald's, pacemaker's and corosync's
# (`corosync -t` writes there), Apache's access log (the cluster's monitor polls /server-status)
# and error log (a refused GET of /server-status from outside, which stage 6 verifies).
# Allowed to grow in place, nothing else.
# crmsh logs every invocation, `crm configure show` included, to its own log.
GROWING_LOGS = re.compile(r"^/var/log/(journal/.*|pacemaker/pacemaker\.log|corosync/corosync\.log|crmsh/crmsh\.log|"
                          r"apache2/(access|error)\.log|wtmp|btmp|lastlog)$|^/run/utmp$")
# Pacemaker's scheduler saves the input of every transition it computes (also the idle recheck,
# every 15 minutes) as a new file here; what a transition does shows in the CIB, compared whole.
SCHEDULER_INPUTS = re.compile(r"^/var/lib/pacemaker/pengine(/pe-(input|warn|error)(-\d+\.bz2|\.last))?$")
UNITS = ("corosync", "pacemaker", "apache2")
SCRATCH = re.compile(r"^/(tmp/hakit-bonding|run/hakit-cib)\.[A-Za-z0-9]{6,}(/|$)")
SCRATCH_TEMPLATES = {"/tmp/hakit-bonding.XXXXXXXX", "/run/hakit-cib.XXXXXX"}


def init_pid(lab: Lab, node: str) -> int:
    """The host PID of the node's init (the container's PID 1)."""
    pid = lab._node_state(node).get("leader_pid")
    assert pid and Path(f"/proc/{pid}").exists(), f"{node} is not running (no init pid {pid})"
    return int(pid)


def root(lab: Lab, node: str) -> str:
    return f"/proc/{init_pid(lab, node)}/root"


def nsrun(lab: Lab, node: str, argv: list[str] | str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a command inside the node's namespaces (mount, uts, ipc, net, pid), not over SSH."""
    cmd = ["sh", "-c", argv] if isinstance(argv, str) else argv
    p = subprocess.run(["nsenter", "-t", str(init_pid(lab, node)), "-m", "-u", "-i", "-n", "-p", "--", *cmd],
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{node}: {cmd} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return p


# ------------------------------------------------------------------ snapshots


@dataclass(frozen=True)
class Inode:
    mode: int
    uid: int
    gid: int
    size: int
    ino: int
    mtime_ns: int
    ctime_ns: int
    sha256: str | None = None
    target: str | None = None  # a symlink's target


def files(base: str) -> dict[str, Inode]:
    """Every path under ``base`` (a node's root seen from here), but `SKIPPED`."""
    out: dict[str, Inode] = {}
    n = len(base)
    for d, dirs, names in os.walk(base):
        rel_d = d[n:] or "/"
        dirs[:] = sorted(x for x in dirs if f"{rel_d.rstrip('/')}/{x}" not in SKIPPED)
        for name in [None, *sorted(names)]:
            path = d if name is None else os.path.join(d, name)
            rel = path[n:] or "/"
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # came and went while walking
                continue
            digest = target = None
            if stat.S_ISREG(st.st_mode) and rel.startswith(tuple(p + "/" for p in DIGESTED)):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
            out[rel] = Inode(st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_ino, st.st_mtime_ns,
                             st.st_ctime_ns, digest, target)
    return out


@dataclass
class NodeState:
    files: dict[str, Inode]
    units: str
    cib: str
    packages: str


def units(lab: Lab, node: str) -> str:
    props = "Id,ActiveState,SubState,UnitFileState,MainPID,InvocationID,NRestarts,ExecMainStartTimestampMonotonic"
    return nsrun(lab, node, ["systemctl", "show", "-p", props, *UNITS]).stdout


def cib(lab: Lab, node: str) -> str:
    """The whole CIB as this node's pacemaker hands it out, or why there is none."""
    p = nsrun(lab, node, ["cibadmin", "--query"], check=False)
    return p.stdout if p.returncode == 0 else f"no CIB (cibadmin exit {p.returncode})"


def packages(lab: Lab, node: str) -> str:
    return nsrun(lab, node, ["dpkg-query", "-W", "-f", "${binary:Package} ${Version} ${db:Status-Abbrev}\n"]).stdout


def node_state(lab: Lab, node: str) -> NodeState:
    return NodeState(files(root(lab, node)), units(lab, node), cib(lab, node), packages(lab, node))


def file_changes(before: dict[str, Inode], after: dict[str, Inode], allowed: dict[str, str] | None = None) -> list[str]:
    """Every path that differs, but logs that only grew in place and ``allowed`` paths."""
    allowed = LOGIN_EFFECTS if allowed is None else allowed
    out = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a == b or path in allowed or SCHEDULER_INPUTS.match(path):
            continue
        if a and b and GROWING_LOGS.match(path) and (a.ino, a.mode, a.uid, a.gid) == (b.ino, b.mode, b.uid, b.gid) \
                and b.size >= a.size:
            continue
        if GROWING_LOGS.match(path) and path.startswith("/var/log/journal/"):
            continue  # journald's own files (a rotation makes new ones)
        if a is None:
            out.append(f"created {path}")
        elif b is None:
            out.append(f"removed {path}")
        else:
            what = [k for k in ("mode", "uid", "gid", "size", "ino", "mtime_ns", "ctime_ns", "sha256", "target")
                    if getattr(a, k) != getattr(b, k)]
            out.append(f"changed {path} ({', '.join(what)})")
    return out


def state_changes(before: NodeState, after: NodeState) -> list[str]:
    out = file_changes(before.files, after.files)
    for what in ("units", "cib", "packages"):
        if getattr(before, what) != getattr(after, what):
            out.append(f"{what} differ:\n" + "\n".join(_diff(getattr(before, what), getattr(after, what))))
    return out


def _diff(a: str, b: str) -> list[str]:
    import difflib

    return list(difflib.unified_diff(a.splitlines(), b.splitlines(), "before", "after", lineterm="", n=1))[:40]


# ------------------------------------------------------------------ the lab host


def host_state(lab: Lab) -> dict[str, str]:
    """This machine's part of the lab: its links, namespaces, firewall table, processes, files."""
    st = lab._state()
    out: dict[str, str] = {}
    for link in sorted(set(st.get("bridges", [])) | set(st.get("host_links", []))):
        out[f"link {link}"] = _sh(["ip", "-o", "link", "show", "dev", link]) + _sh(["ip", "-o", "addr", "show", "dev", link])
    for ns in st.get("netns", []):
        out[f"netns {ns}"] = "".join(_sh(["ip", "-n", ns, "-o", *c]) for c in (["link"], ["addr"], ["route"]))
    out["nft"] = _sh(["nft", "list", "table", "inet", st["nft_table"]])
    for name, node in sorted(st.get("nodes", {}).items()):
        for key in ("nspawn_pid", "leader_pid", "bmc_pid"):
            pid = node.get(key)
            out[f"{name} {key}"] = f"{pid} started at {_start_time(pid)}"
    out["bmc power"] = json.dumps(lab.bmc_status(), sort_keys=True)
    for path, ino in files(str(lab.dir)).items():
        if path.startswith("/nodes/") and path.count("/") > 2 and path.split("/")[3] in ("root", "upper", "work"):
            continue  # the nodes' own filesystems, walked from inside above
        if path.endswith((".log", ".lock")) or path in ("/nodes", "/") or path.startswith("/nodes/") and path.count("/") == 2:
            continue  # consoles, BMC logs and lock files are written as the lab runs
        out[f"file {path}"] = f"{ino.mode:o} {ino.size} {ino.ino} {ino.mtime_ns} {ino.ctime_ns}"
    return out


def _sh(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout


def _start_time(pid: int | None) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, TypeError):
        return "(not running)"


def host_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)]


# ------------------------------------------------------------------ the command log

SHELL = "/opt/hakit-test/shell"
LOG_DIR = "/var/log/hakit-test/cmd"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-hakit-test.conf"
WRAPPER = f"""#!/bin/sh
# hakit test: keep the command sshd hands root's shell, then run it unchanged.
if [ "$1" = "-c" ]; then printf '%s' "$2" > "{LOG_DIR}/$(date +%s%N).$$"; fi
exec /bin/bash "$@"
"""
SSHD_CONF = ("Subsystem sftp /usr/lib/openssh/sftp-server -l INFO\n"
             "LogLevel VERBOSE\n"
             "LogVerbose *:mm_audit_run_command():*\n")
AUDIT = "mm_audit_run_command entering command "


@dataclass
class Instrumented:
    """The command log of one node since `mark` (see the module docstring)."""

    lab: Lab
    node: str
    cursor: str = ""

    def mark(self) -> None:
        """Forget earlier commands: the logs count from now."""
        nsrun(self.lab, self.node, f"rm -f {LOG_DIR}/*")
        out = nsrun(self.lab, self.node, ["journalctl", "-n", "0", "--show-cursor", "-q"]).stdout
        self.cursor = out.strip().rsplit("cursor: ", 1)[-1]

    def journal(self, *matches: str) -> list[dict]:
        p = nsrun(self.lab, self.node, ["journalctl", "-q", "-o", "json", f"--after-cursor={self.cursor}", *matches])
        return [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]

    def commands(self) -> list[str]:
        """Every command line root's shell received since `mark`, in full, in order."""
        d = Path(root(self.lab, self.node) + LOG_DIR)
        return [f.read_text() for f in sorted(d.iterdir(), key=lambda f: tuple(int(x) for x in f.name.split(".")))]

    def sshd_commands(self) -> list[str]:
        """The command of every exec and subsystem request sshd accepted since `mark` (a prefix)."""
        return [str(e["MESSAGE"]).split(AUDIT, 1)[1] for e in self.journal("_COMM=sshd-session")
                if AUDIT in str(e.get("MESSAGE", ""))]

    def sftp_ops(self) -> list[str]:
        return [str(e["MESSAGE"]) for e in self.journal("SYSLOG_IDENTIFIER=sftp-server")]

    def systemd_messages(self) -> list[str]:
        """What the node's systemd (PID 1) logged since `mark`: any start, stop, reload or daemon-reload."""
        return [str(e.get("MESSAGE")) for e in self.journal("_PID=1")]

    def complete(self) -> list[str]:
        """Commands sshd accepted that the wrapper did not record (empty: the log is complete)."""
        # sshd escapes control characters in octal and cuts long lines: compare letters only, as prefixes.
        got = [_letters(g) for g in self.commands()]
        missing = []
        for c in self.sshd_commands():
            hit = next((i for i, g in enumerate(got) if g.startswith(_letters(_unvis(c)))), None)
            if hit is None:
                missing.append(c)
            else:
                got.pop(hit)
        return missing


_VIS = re.compile(r"\\([0-7]{3}|.)")
_CSTYLE = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "a": "\a", "b": "\b", "v": "\v", "f": "\f", "0": "\0"}


def _unvis(s: str) -> str:
    """sshd's escaping of a command undone: C-style (\\n, \\t, \\\\) and octal (\\012) escapes."""
    def one(m: re.Match) -> str:
        e = m.group(1)
        return chr(int(e, 8)) if len(e) == 3 else _CSTYLE.get(e, e)
    return _VIS.sub(one, s)


def _letters(s: str) -> str:
    return re.sub(r"[^A-Za-z]", "", s)


@contextmanager
def instrumented(lab: Lab, nodes: Iterable[str]) -> Iterator[dict[str, Instrumented]]:
    """Turn the command log on for ``nodes`` (root's shell, sshd's and sftp-server's logging); off on exit."""
    nodes = list(nodes)
    setup = (f"mkdir -p {os.path.dirname(SHELL)} {LOG_DIR} && printf '%s' {shlex.quote(WRAPPER)} > {SHELL} && "
             f"chmod 0755 {SHELL} && printf '%s' {shlex.quote(SSHD_CONF)} > {SSHD_DROPIN} && sshd -t && "
             f"usermod -s {SHELL} root && systemctl reload ssh")
    undo = (f"usermod -s /bin/bash root; rm -f {SSHD_DROPIN}; systemctl reload ssh; "
            f"rm -rf {os.path.dirname(SHELL)} {os.path.dirname(LOG_DIR)}")
    try:
        for n in nodes:
            nsrun(lab, n, setup)
            _wait_ready(lab, n)
        yield {n: Instrumented(lab, n) for n in nodes}
    finally:
        for n in nodes:
            nsrun(lab, n, undo, check=False)


def _wait_ready(lab: Lab, node: str, timeout_s: float = 30) -> None:
    """Until a new SSH session goes through the wrapper and sshd's audit line (sshd re-executes on reload)."""
    deadline = time.monotonic() + timeout_s
    seen = f"journalctl -q -o cat _COMM=sshd-session -n 200 | grep -c '{AUDIT}echo hakit-test-ready' || true"
    while True:
        p = lab.ssh(node, ["echo", "hakit-test-ready"])
        if p.returncode == 0 and int(nsrun(lab, node, seen).stdout.strip() or 0) > 0:
            return
        assert time.monotonic() < deadline, f"{node}: the command log did not come up: {p.stderr[-300:]}"
        time.sleep(0.2)


# ------------------------------------------------------------------ what counts as a write

# Each simple command of a line (split at ; && || | $( ` ( ) { } and the shell's keywords,
# quotes or not: a real command word always follows one of these) is judged by its first
# word. These change a host, always or with the options given; any other word only reads.
ALWAYS_WRITES = {
    "CIB_file",  # a pacemaker tool on a CIB file (simple_commands): judged by the file's path
    "mv", "cp", "rm", "rmdir", "mkdir", "mktemp", "chown", "chmod", "chgrp", "install", "ln", "touch", "tee",
    "truncate", "dd", "shred", "usermod", "useradd", "passwd", "corosync-keygen", "crmadmin", "ifdown",
    "apt", "rmmod", "mount", "umount", "kill", "pkill", "killall", "reboot", "shutdown", "iptables",
    "a2enconf", "a2disconf", "a2enmod", "a2dismod", "a2ensite", "a2dissite", "crm_simulate",  # its working copy
}
WRITES_UNLESS = {  # word -> the options with which it only reads (anything else writes)
    "crm": re.compile(r"^\s*(configure\s+show|status|ra\s+(info|list|classes|providers))\b"),
    "systemctl": re.compile(r"^\s*(is-active|is-enabled|is-failed|show|status|cat|list-\S+)\b"),
    "cibadmin": re.compile(r"^\s*(--query|-Q)\b"),
    "crm_attribute": re.compile(r"(--query|-G)\b"),
    "crm_resource": re.compile(r"^\s*(--list|-L|--locate|-W|--why|--list-\S+)\b"),
    "crm_node": re.compile(r"^\s*(-[lnpqi]|--list|--name|--partition|--quorum)\b"),
    "corosync-cfgtool": re.compile(r"^\s*(-s|-n|-h)\b"),
    "corosync-cmapctl": re.compile(r"^(?!.*(^|\s)-[sdDpC]\b)"),  # set, delete, load a file, clear stats
    "stonith_admin": re.compile(r"^\s*(--history|-H|--list\S*|-l|-L|--query|-Q|--metadata|-M)\b"),
    "ifup": re.compile(r"--no-act\b"),
    "modprobe": re.compile(r"^\s*-n\b"),
    "ip": re.compile(r"^(\s*-\S+)*\s*\S+\s*(show|list|get)?\s*$|\b(show|list|get)\b"),
    "nft": re.compile(r"^\s*list\b"),
    "sysctl": re.compile(r"^\s*(-n\s+)?[\w.]+\s*$"),
    "sed": re.compile(r"^(?!.*(^|\s)-i)"),
    "dpkg": re.compile(r"^\s*(-l|-L|-s|-S|--list|--status)\b"),
    # apt-get only simulates with -s (stage 00's plan; it also keeps apt's binary cache in memory)
    "apt-get": re.compile(r"(^|\s)(-s|--simulate|--just-print|--dry-run|--recon|--no-act)(\s|$)"),
}
# Of those, the ones whose only effect is on the files they name; the others change the running
# system (the CIB, a service, a process, the network), so they count as writes wherever they point.
PATH_WRITERS = {"mv", "cp", "rm", "rmdir", "mkdir", "mktemp", "chown", "chmod", "chgrp", "install", "ln", "touch",
                "tee", "truncate", "dd", "shred", "sed", "crm_simulate", "redirect", "CIB_file"}
# Pacemaker's tools that honour CIB_file (then they read and write that file, never the cluster).
CIB_TOOLS = {"cibadmin", "crm_attribute", "crm_resource", "crm_node", "crm_mon", "crm_failcount", "crm_standby",
             "crm_verify"}
SPLIT = re.compile(r"\$\(|`|&&|\|\||[;|&(){}\n]|(?<![\w-])(?:then|else|elif|do|done|fi|if|while|until|!)(?![\w-])")
PREFIXES = {"sudo", "env", "exec", "nohup", "time", "xargs"}
REDIRECT = re.compile(r"(?<![<>&0-9])\d?>>?\s*(?!/dev/null\b|&)(\S+)")


def simple_commands(line: str) -> list[tuple[str, str]]:
    """(command word, the rest) of each simple command in a shell line. A pacemaker tool pointed at a
    file with ``CIB_file=<path>`` works on that file instead of the cluster: it comes back as the
    pseudo-command ``CIB_file`` with the path, so it is judged by where that file is."""
    out = []
    for seg in SPLIT.split(line):
        words = seg.split()
        cib_file = None
        while words and (re.match(r"^\w+=", words[0]) or words[0] in PREFIXES):
            if words[0].startswith("CIB_file="):
                cib_file = words[0].split("=", 1)[1].strip("'\"")
            words.pop(0)
        if words:
            word = words[0].strip("'\"").rsplit("/", 1)[-1]
            if cib_file and word in CIB_TOOLS:
                out.append(("CIB_file", f" {cib_file}"))
                continue
            out.append((word, seg.split(words[0], 1)[1]))
    return out


def write_commands(commands: Iterable[str]) -> tuple[list[str], list[str]]:
    """(command lines that could change the host, those that wrote only files inside a scratch dir)."""
    outside, inside = [], []
    for c in commands:
        writes = [(w, rest) for w, rest in simple_commands(c)
                  if w in ALWAYS_WRITES or (w in WRITES_UNLESS and not WRITES_UNLESS[w].search(rest))]
        writes += [("redirect", m.group(1)) for m in REDIRECT.finditer(c)]
        if not writes:
            continue
        paths = [p for _, rest in writes for p in _words(rest) if p.startswith("/")]
        if all(w in PATH_WRITERS for w, _ in writes) and paths and \
                all(SCRATCH.match(p) or p in SCRATCH_TEMPLATES for p in paths):
            inside.append(c)
        else:
            outside.append(c)
    return outside, inside


def _words(c: str) -> list[str]:
    try:
        return shlex.split(c)
    except ValueError:
        return c.split()


SFTP_PATH = re.compile(r'^(?P<verb>[a-z-]+) "(?P<path>[^"]*)"(?P<rest>.*)$')
SFTP_READS = ("opendir", "closedir", "stat", "lstat", "fstat", "realpath", "readlink", "statvfs")


def sftp_writes(ops: Iterable[str]) -> tuple[list[str], list[str]]:
    """(file operations that wrote outside any scratch dir, those inside one) in sftp-server's log."""
    outside, inside = [], []
    for op in ops:
        m = SFTP_PATH.match(op)
        if not m:
            continue  # session opened/closed
        verb, path, rest = m["verb"], m["path"], m["rest"]
        if verb in SFTP_READS or (verb == "open" and re.search(r"flags READ\b(?!,)", rest)) or \
                (verb == "close" and re.search(r"written 0\b", rest)):
            continue
        (inside if SCRATCH.match(path) else outside).append(op)
    return outside, inside


def encodings(secret: bytes) -> dict[str, bytes]:
    """The forms a secret could leak in: raw, hex (both cases), base64 and base64url at every
    alignment (what a larger encoded blob that holds the secret would show)."""
    forms = {"raw": secret, "hex": secret.hex().encode(), "HEX": secret.hex().upper().encode()}
    for shift in range(3):
        # base64 of (k filler bytes + secret): the characters that depend on the secret alone.
        enc = base64.b64encode(bytes(shift) + secret)
        start = 4 if shift else 0  # the first group mixes in the filler
        end = (shift + len(secret)) // 3 * 4  # after it: padding, or whatever follows the secret
        body = enc[start:end]
        forms[f"base64+{shift}"] = body
        forms[f"base64url+{shift}"] = body.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def pieces(form: bytes, size: int) -> list[bytes]:
    """Non-overlapping pieces: any leaked run of at least 2*size-1 consecutive characters holds one."""
    if len(form) < 2 * size:
        return [form]
    return [form[i:i + size] for i in range(0, len(form) - size + 1, size)]


@dataclass
class SecretSearch:
    """Look for secrets, in every form of `encodings`, in bytes and files; report names, never values."""

    secrets: dict[str, bytes]
    size: int = 12  # characters per piece (a shorter secret: half its length)
    _needles: list[tuple[str, str, bytes]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        for label, value in self.secrets.items():
            size = min(self.size, len(value) // 2)
            assert size >= 8, f"{label} is too short to search for without false alarms"
            for form, enc in encodings(value).items():
                for p in pieces(enc, size):
                    self._needles.append((label, form, p))

    def __repr__(self) -> str:
        return f"SecretSearch({sorted(self.secrets)}, <values hidden>)"

    def in_bytes(self, data: bytes) -> set[tuple[str, str]]:
        return {(label, form) for label, form, p in self._needles if p in data}

    def in_tree(self, folder: Path) -> dict[str, set[tuple[str, str]]]:
        """file (relative) -> the (secret, form) pairs found in it; every regular file under ``folder``."""
        found = {}
        for f in sorted(folder.rglob("*")):
            if f.is_file() and not f.is_symlink():
                hits = self.in_bytes(f.read_bytes())
                if hits:
                    found[str(f.relative_to(folder))] = hits
        return found


# A line of pacemaker's own log (/var/log/pacemaker/pacemaker.log), 2.1 and 3.0 alike:
# "Dec 01 15:49:21.851 vm-node1 pacemaker-based     [545] (retrieveCib) 	info: Reading cluster ..."
_PCMK_LINE = re.compile(r"^(\w{3} \d\d \d\d:\d\d:\d\d\.\d{3}) \S+ (\S+)\s+\[\d+\] \((\w+)\)\s+(\w+): (.*)$")


@dataclass(frozen=True)
class FirstStart:
    """What a node's pacemaker log says of pacemaker's first start there."""

    cib_read: list[str]  # pacemaker-based's "Reading cluster configuration file ..." of its start-up
    pending_s: float | None  # the controller: entering S_PENDING until its next state change
    dc_timeout: bool  # its election trigger (dc-deadtime) popped while it waited in S_PENDING
    cib_warnings: list[str]  # pacemaker-based's warnings and errors (a CIB it could not verify, ...)


def first_pacemaker_start(lab: Lab, node: str) -> FirstStart:
    """Read from the node's filesystem, not over SSH: the log up to pacemakerd's second start, if any."""
    text = Path(root(lab, node), "var/log/pacemaker/pacemaker.log").read_text(errors="replace")
    lines = [m.groups() for m in map(_PCMK_LINE.match, text.splitlines()) if m]
    starts = [i for i, (_, d, _, _, msg) in enumerate(lines) if d == "pacemakerd" and msg.startswith("Starting Pacemaker ")]
    first = lines[starts[0]:starts[1]] if len(starts) > 1 else lines[(starts or [0])[0]:]

    def at(stamp: str) -> float:
        t = time.strptime(f"2000 {stamp.split('.')[0]}", "%Y %b %d %H:%M:%S")
        return time.mktime(t) + int(stamp.rsplit(".", 1)[1]) / 1000

    ctl = [(at(s), msg) for s, d, _, _, msg in first if d == "pacemaker-controld"]
    pending = next((t for t, msg in ctl if "State transition S_STARTING -> S_PENDING" in msg), None)
    after = [(t, msg) for t, msg in ctl if pending is not None and t >= pending and "S_STARTING -> S_PENDING" not in msg]
    left = next((t for t, msg in after if "State transition" in msg or "I_DC_TIMEOUT" in msg), None)
    based = [(fn, level, msg) for _, d, fn, level, msg in first if d == "pacemaker-based"]
    return FirstStart(
        cib_read=[msg for fn, _, msg in based if msg.startswith("Reading cluster configuration file")
                  and fn != "cib_file_write_with_digest"],  # (not its re-read of each file it writes)
        pending_s=round(left - pending, 1) if pending is not None and left is not None else None,
        dc_timeout=any("I_DC_TIMEOUT" in msg and "S_PENDING" in msg for _, msg in after),
        cib_warnings=[msg for _, level, msg in based if level in ("warning", "error", "crit")],
    )


def seeded_first_start(lab: Lab, run_folder: Path) -> tuple[list[str], str]:
    """A fresh build with a profile that sets dc-deadtime (`hakit run` into ``run_folder``): what is
    wrong with its first pacemaker start (empty: nothing), and a line of figures to print.

    Each node's pacemaker read a CIB of its own, with its digest and no warning (stage 3 seeded it);
    a controller's election trigger popped in S_PENDING (the wait is dc-deadtime's); stage 4 found
    the seeded value as wanted and the live CIB holds it.
    """
    problems = []
    want = lab.params.cluster.profile
    value = get_profile(want).dc_deadtime_value  # e.g. "5s"
    starts = {n.name: first_pacemaker_start(lab, n.name) for n in lab.params.nodes}
    for node, s in starts.items():
        if s.cib_read != ["Reading cluster configuration file /var/lib/pacemaker/cib/cib.xml "
                          "(digest: /var/lib/pacemaker/cib/cib.xml.sig)"]:
            problems.append(f"{node}: pacemaker-based read {s.cib_read} at its first start")
        if s.cib_warnings:
            problems.append(f"{node}: pacemaker-based warned at its first start: {s.cib_warnings}")
    if not any(s.dc_timeout for s in starts.values()):
        problems.append("no controller's election trigger (dc-deadtime) popped in S_PENDING")
    props = json.loads((run_folder / "04_pacemaker_properties" / "record.json").read_text())
    patch = [e for o in props["operations"] if o["op"] == "CibPatch" for e in o["elements"]]
    if any("dc-deadtime" in e for e in patch):
        problems.append(f"stage 04 changed dc-deadtime: {patch}")
    live = nsrun(lab, lab.params.nodes[0].name, ["crm_attribute", "--type", "crm_config", "--name", "dc-deadtime",
                                                  "--query", "--quiet"], check=False).stdout.strip()
    if live != value:
        problems.append(f"the live CIB holds dc-deadtime {live!r}, the profile {want!r} sets {value!r}")
    summary = json.loads((run_folder / "summary.json").read_text())
    stage3 = next(st["duration_s"] for st in summary["stages"] if st["notebook_name"] == "03_corosync_rings")
    figures = (f"FIGURES cold start, profile {want} (dc-deadtime {value}): stage 03 {stage3:.1f} s; each controller "
               "in S_PENDING: " + ", ".join(f"{n} {s.pending_s} s" for n, s in starts.items()))
    return problems, figures


def wait_until(what: str, check, timeout: float = 90.0, every: float = 0.5):
    """Poll ``check`` until it returns something true (returned); an exception counts as not yet (a node may
    be booting). Past ``timeout`` fail with ``what`` and the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # noqa: BLE001 - keep trying until the deadline
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not reached in {timeout:.0f} s (last: {last!r})")
