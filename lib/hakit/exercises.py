"""Exercises at the end of each notebook: a task on the lab, a prediction, the one call that does it,
and a checker that reads the lab.

A trainee reads the task (``course.show("03-ring0")``), writes down a prediction, runs the one-line
call shown (it changes the lab, never a real cluster: a `Course` needs a params file with a lab
section), then asks ``course.check("03-ring0", quorate=True)``. The checker reads the nodes itself
(the same tools an admin would type) and says passed, or what is not yet as asked, with a hint.
Answers to the prediction questions are keyword arguments; the checker compares them with what
the lab shows. ``course.restore("03-ring0")`` puts the lab back. Each exercise's answer text is
in a notebook cell tagged ``answer``: `hakit prepare` leaves those out of a trainee's copies and
keeps them in a trainer's (``--trainer``).

Checkers only read; a notebook run headless (``hakit run``) shows "not done yet", changes nothing.
"""

from __future__ import annotations

import html
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from .facts.corosync import parse_cfgtool_status, parse_quorumtool_status
from .facts.pacemaker import ClusterStatus, parse_crm_mon, parse_fence_history
from .params import Params
from .stages.scores import parse_scores  # noqa: F401 - part of this module's API (exercise 06)

Check = Callable[["Course", Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Exercise:
    id: str  # "<notebook number>-<name>"
    title: str
    task: str  # what to do, in words (markdown)
    predict: str  # the question to answer before doing it
    call: str  # the one line that does it (run in the notebook, names `course`)
    answers: tuple[str, ...]  # the keyword answers check() wants: the prediction, made checkable
    hint: str
    restore_call: str  # how to put the lab back, in words or as a call
    check: Check = field(compare=False, repr=False)
    restore: Callable[["Course"], None] = field(compare=False, repr=False)

    @property
    def notebook(self) -> str:
        return self.id.split("-", 1)[0]

    def for_nodes(self, first: str, second: str) -> "Exercise":
        """The texts with this lab's node names ({first}: the preferred node, {second}: the next)."""
        def f(t: str) -> str:
            return t.replace("{first}", first).replace("{second}", second)
        return replace(self, title=f(self.title), task=f(self.task), predict=f(self.predict), call=f(self.call),
                       hint=f(self.hint), restore_call=f(self.restore_call))


@dataclass(frozen=True)
class Result:
    exercise: str
    passed: bool
    problems: tuple[str, ...]
    hint: str

    def __str__(self) -> str:
        if self.passed:
            return f"{self.exercise}: passed"
        return f"{self.exercise}: not done yet: " + "; ".join(self.problems) + f" (hint: {self.hint})"

    def _repr_html_(self) -> str:
        if self.passed:
            return f"<p><b>{html.escape(self.exercise)}: passed</b></p>"
        items = "".join(f"<li>{html.escape(p)}</li>" for p in self.problems)
        return (f"<p><b>{html.escape(self.exercise)}: not done yet</b></p><ul>{items}</ul>"
                f"<p><i>hint:</i> {html.escape(self.hint)}</p>")


class NotALab(ValueError):
    """Exercises change the lab; a params file without a lab section gets none."""


class Course:
    """The exercises of one lab: show, check, restore; SSH to the nodes is opened on first use."""

    def __init__(self, params: Params):
        if params.lab is None:
            raise NotALab("exercises run on the local lab: this params file has no lab section, so it may "
                          "name real hosts, which an exercise must never change")
        from .lab import Lab  # imported here: the library loads without the lab's own dependencies

        self.params = params
        self.lab = Lab(params, progress=lambda m: print(m, flush=True))
        self._hosts: dict[str, Any] = {}

    # -- the trainee's side -------------------------------------------------------------------------------

    def exercise(self, exercise_id: str) -> Exercise:
        """The exercise with this lab's node names in its texts."""
        return get(exercise_id).for_nodes(_first(self), _second(self))

    def show(self, exercise_id: str) -> "Card":
        return Card(self.exercise(exercise_id))

    def check(self, exercise_id: str, **answers: Any) -> Result:
        ex = self.exercise(exercise_id)
        unknown = sorted(set(answers) - set(ex.answers))
        if unknown:
            raise TypeError(f"{ex.id}: unknown answer(s) {', '.join(unknown)}; this exercise takes "
                            f"{', '.join(ex.answers) or 'no answer'}")
        problems = [f"answer {a}=... is missing: the prediction, e.g. {ex.id!r} asks: {ex.predict}"
                    for a in ex.answers if a not in answers]
        try:
            problems += ex.check(self, answers)
        except Exception as e:  # noqa: BLE001 - a node that cannot be read is one more thing not as asked
            problems.append(f"could not read the lab: {e}")
        return Result(ex.id, not problems, tuple(problems), ex.hint)

    def restore(self, exercise_id: str) -> str:
        ex = self.exercise(exercise_id)
        ex.restore(self)
        return f"{ex.id}: restored ({ex.restore_call})"

    def status(self) -> pd.DataFrame:
        """Every exercise of the course and whether the lab shows it done now (answers not checked)."""
        rows = []
        for ex in EXERCISES.values():
            r = self.check(ex.id, **{a: _ANY for a in ex.answers})
            rows.append({"exercise": ex.id, "title": ex.title, "state": "done" if r.passed else "not done",
                         "missing": "; ".join(r.problems)})
        return pd.DataFrame(rows, columns=["exercise", "title", "state", "missing"])

    # -- reading the lab (each a command an admin would type on a node) ------------------------------------

    def host(self, node: str):
        from .remote import connect

        h = self._hosts.get(node)
        if h is None:
            h = self._hosts[node] = connect(self.params, self.params.node(node))
        return h

    def run(self, node: str, command: str, check: bool = False) -> str:
        return self.host(node).run(command, check=check, timeout=60).stdout

    def status_via(self, node: str) -> ClusterStatus:
        return parse_crm_mon(self.run(node, "crm_mon -1 --output-as=xml", check=True))

    def close(self) -> None:
        for h in self._hosts.values():
            h.close()
        self._hosts.clear()


class _Any:
    """Stands for "whatever the trainee answered" in Course.status (the lab state alone is judged)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "any"


_ANY = _Any()


@dataclass(frozen=True)
class Card:
    """The exercise as the notebook shows it: task, prediction, the call; never the answer."""

    ex: Exercise

    def text(self) -> str:
        e = self.ex
        ans = ", ".join(f"{a}=..." for a in e.answers)
        return (f"Exercise {e.id}: {e.title}\n\nTask: {e.task}\n\nPredict first: {e.predict}\n\n"
                f"Then do it:  {e.call}\nCheck:       course.check({e.id!r}{', ' + ans if ans else ''})\n"
                f"Afterwards:  course.restore({e.id!r})  ({e.restore_call})")

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        e = self.ex
        ans = ", ".join(f"{a}=..." for a in e.answers)
        return (f"<h4>Exercise {html.escape(e.id)}: {html.escape(e.title)}</h4>"
                f"<p><b>Task:</b> {html.escape(e.task)}</p><p><b>Predict first:</b> {html.escape(e.predict)}</p>"
                f"<p><b>Then do it:</b> <code>{html.escape(e.call)}</code></p>"
                f"<p><b>Check:</b> <code>course.check({html.escape(repr(e.id))}"
                f"{html.escape(', ' + ans if ans else '')})</code></p>"
                f"<p><b>Afterwards:</b> <code>course.restore({html.escape(repr(e.id))})</code> "
                f"({html.escape(e.restore_call)})</p>")


def _answer(answers: Mapping[str, Any], name: str, actual: Any, what: str) -> list[str]:
    """A wrong prediction is named with what the lab shows; a missing one was reported already."""
    if name not in answers or answers[name] == actual or str(answers[name]) == str(actual):
        return []
    return [f"{name}={answers[name]!r}, but {what} is {actual!r}"]


def _carrier(c: Course, node: str, network: str) -> tuple[str, str]:
    """The interface that holds ``node``'s address on ``network`` and its carrier ("1" up, "0" down)."""
    n = c.params.node(node)
    addr = str(n.private_ip if network == "private" else n.public_ip)
    out = c.run(node, f"ip -o -4 addr show to {shlex.quote(addr)}")
    dev = out.split()[1] if out.split() else ""
    if not dev:
        return "", "?"
    return dev, c.run(node, f"cat /sys/class/net/{shlex.quote(dev)}/carrier 2>/dev/null || echo 0").strip()


def _first(c: Course) -> str:
    """The node the service prefers (it runs there in the normal layout)."""
    return c.params.preferred_node


def _second(c: Course) -> str:
    return next(n.name for n in c.params.nodes if n.name != c.params.preferred_node)


# -- 01: a cable ---------------------------------------------------------------------------------------------


def _check_cable(c: Course, a: Mapping[str, Any]) -> list[str]:
    node = _second(c)
    dev, carrier = _carrier(c, node, "private")
    out = [] if carrier == "0" else [f"{node}'s private interface {dev or '(none found)'} still has carrier"]
    c.run(node, "true", check=True)  # this very check came in over the public network
    out += _answer(a, "ssh_works", True, f"SSH to {node} (over the public network)")
    return out


def _restore_cable(c: Course) -> None:
    c.lab.link(_second(c), "ring0", up=True)


# -- 02: the authkey -----------------------------------------------------------------------------------------


def _check_authkey(c: Course, a: Mapping[str, Any]) -> list[str]:
    seen = {n.name: c.run(n.name, "stat -c '%a %U' /etc/corosync/authkey").split() for n in c.params.nodes}
    digests = {n.name: c.run(n.name, "sha256sum /etc/corosync/authkey").split()[:1] for n in c.params.nodes}
    out = []
    if len({tuple(v) for v in digests.values()}) != 1:
        out.append("the nodes' authkeys differ (compare `sha256sum /etc/corosync/authkey`): run stage 02")
    mode, owner = (seen[_first(c)] + ["?", "?"])[:2]
    out += _answer(a, "mode", mode, f"the mode on {_first(c)} (`stat -c %a`)")
    out += _answer(a, "owner", owner, f"the owner on {_first(c)}")
    return out


# -- 03: ring0 down ------------------------------------------------------------------------------------------


def _check_ring0(c: Course, a: Mapping[str, Any]) -> list[str]:
    node = _first(c)
    links = parse_cfgtool_status(c.run(node, "corosync-cfgtool -s", check=True))
    q = parse_quorumtool_status(c.run(node, "corosync-quorumtool -s"))
    peers = {n.nodeid for n in c.params.nodes if n.name != node}
    out = []
    if not set(links.link(0).disconnected) >= peers:
        out.append(f"link 0 on {node} still reaches nodes {sorted(peers - set(links.link(0).disconnected))}: "
                   "ring0 is up")
    if set(links.link(1).disconnected) & peers:
        out.append("link 1 is down too: only ring0 was to go")
    out += _answer(a, "quorate", q.quorate, "corosync-quorumtool's Quorate")
    return out


def _restore_ring0(c: Course) -> None:
    c.lab.link(_first(c), "ring0", up=True)


# -- 04: two_node quorum -------------------------------------------------------------------------------------


def _check_quorum(c: Course, a: Mapping[str, Any]) -> list[str]:
    q = parse_quorumtool_status(c.run(_first(c), "corosync-quorumtool -s"))
    return _answer(a, "votes", q.quorum, "`Quorum:` in corosync-quorumtool -s")


def _nothing(c: Course) -> None:
    return None


# -- 05: failcount -------------------------------------------------------------------------------------------


def _failcount(c: Course, via: str, node: str) -> int:
    from .failover.context import parse_failcount

    return parse_failcount(c.run(via, f"crm_failcount --query --resource httpd --node {shlex.quote(node)}"))


def _check_failcount(c: Course, a: Mapping[str, Any]) -> list[str]:
    node = _first(c)
    via = _second(c)
    n = _failcount(c, via, node)
    st = c.status_via(via)
    out = [] if n >= 1 else [f"httpd has no failure on {node} (failcount 0): Apache was not killed there, or the "
                             "failcount expired (failure_timeout) or was cleaned up"]
    out += _answer(a, "failcount", n, f"httpd's failcount on {node}")
    out += _answer(a, "node", st.where("httpd"), "the node running httpd now")
    return out


def _restore_failcount(c: Course) -> None:
    c.run(_second(c), "crm_resource --cleanup --resource httpd --quiet")


# -- 06: gateway and scores ----------------------------------------------------------------------------------

def live_scores(c: Course, node: str) -> dict[tuple[str, str], str]:
    """The live CIB's allocation scores, computed on a copy (hakit.stages.scores: a checker writes nothing
    into pacemaker's CIB directory, which `crm_simulate -sL`, what a trainee types, does)."""
    from .stages.scores import scores_on_copy

    return scores_on_copy(c.host(node))


def _check_scores(c: Course, a: Mapping[str, Any]) -> list[str]:
    node = _first(c)
    via = _second(c)
    st = c.status_via(via)
    out = []
    if st.attribute(node, "pingd") not in (None, "0"):
        out.append(f"{node} still reaches the gateway (pingd={st.attribute(node, 'pingd')})")
    scores = live_scores(c, via)
    score = scores.get(("vip", node), "?")
    if score != "-INFINITY":
        out.append(f"the VIP's score on {node} is {score}, not -INFINITY: the gateway rule has not banned it")
    if st.where("vip") == node:
        out.append(f"the VIP still runs on {node}")
    out += _answer(a, "score", score, f"the VIP's allocation score on {node}")
    out += _answer(a, "node", st.where("vip"), "the node running the VIP now")
    return out


def _restore_gateway(c: Course) -> None:
    c.lab.gateway(_first(c), reachable=True)


# -- 07: the standby node lost -------------------------------------------------------------------------------


def _check_passive(c: Course, a: Mapping[str, Any]) -> list[str]:
    active, lost = _first(c), _second(c)
    st = c.status_via(active)
    out = []
    if lost in st.online:
        out.append(f"{lost} is online: it was not powered off (or is back)")
    cut_at = c.lab._node_state(lost).get("cut_at") or 0
    hist = parse_fence_history(c.run(active, f"stonith_admin --history {shlex.quote(lost)} --verbose --output-as=xml"))
    fenced = [e for e in hist if e.target == lost and e.ok and (e.completed or 0) >= cut_at - 2]
    if c.params.pacemaker.stonith_enabled and not fenced:
        out.append(f"no successful fencing of {lost} since its power was cut")
    if st.where("vip") != active:
        out.append(f"the VIP is on {st.where('vip') or 'no node'}, not on {active}")
    out += _answer(a, "fenced", fenced[-1].target if fenced else None, "the node fenced")
    out += _answer(a, "moved", st.where("vip") != active, "whether the service moved")
    return out


def _restore_passive(c: Course) -> None:
    c.lab.power_on(_second(c))


# -- 08: a move with a lifetime ------------------------------------------------------------------------------


def _check_move(c: Course, a: Mapping[str, Any]) -> list[str]:
    to = _second(c)
    st = c.status_via(_first(c))
    cons = c.run(_first(c), "cibadmin --query --scope constraints")
    out = []
    m = re.search(r'<rsc_location[^>]*id="(cli-prefer-vip)"[^>]*>', cons)
    if m is None:
        out.append("no cli-prefer-vip constraint: the VIP was not moved with crm_resource --move (or it was cleared)")
    elif "date_expression" not in cons:
        out.append("cli-prefer-vip has no lifetime (no date_expression rule): pass a lifetime such as PT10M")
    if st.where("vip") != to:
        out.append(f"the VIP is on {st.where('vip') or 'no node'}, not on {to}")
    out += _answer(a, "constraint", m.group(1) if m else None, "the constraint the move left")
    return out


def _restore_move(c: Course) -> None:
    c.run(_first(c), "crm_resource --clear --resource vip")


EXERCISES: dict[str, Exercise] = {
    e.id: e
    for e in (
        Exercise(
            "01-cable", "pull a cable of the private network",
            "Pull every private-network (ring0) cable of the second node, as if its switch port died.",
            "Can this machine still log in to that node over SSH? (The runbooks connect over the public network.)",
            'course.lab.link("{second}", "ring0", up=False)', ("ssh_works",),
            "lab.link takes a node and a role (ring0 = the private network); the checker reads the carrier of "
            "the interface holding the node's private address",
            'course.lab.link("{second}", "ring0", up=True)', _check_cable, _restore_cable,
        ),
        Exercise(
            "02-authkey", "read the authkey's owner and mode without reading the key",
            "On a node, run `stat -c '%a %U' /etc/corosync/authkey` (via `course.run(node, ...)`).",
            "Which mode and owner does corosync require for the key, and are the key files the same on both nodes?",
            "course.run(\"{first}\", \"stat -c '%a %U' /etc/corosync/authkey\")", ("mode", "owner"),
            "mode as stat prints it, e.g. mode='600'; never print the key itself: compare sha256sum digests",
            "nothing to restore (read only)", _check_authkey, _nothing,
        ),
        Exercise(
            "03-ring0", "ring0 down: what corosync does with two rings",
            "Take ring0 (the private network) down on the first node.",
            "What will `corosync-cfgtool -s` show for link 0 and link 1, and is the cluster still quorate?",
            'course.lab.link("{first}", "ring0", up=False)', ("quorate",),
            "then run course.run('{first}', 'corosync-cfgtool -s') and 'corosync-quorumtool -s'",
            'course.lab.link("{first}", "ring0", up=True)', _check_ring0, _restore_ring0,
        ),
        Exercise(
            "04-quorum", "how many votes make quorum with two_node",
            "Read `corosync-quorumtool -s` on the first node: its votequorum section and flags.",
            "With two nodes of one vote each and `two_node: 1`, how many votes does quorum need?",
            'print(course.run("{first}", "corosync-quorumtool -s"))', ("votes",),
            "the line `Quorum:` is the number of votes a partition needs",
            "nothing to restore (read only)", _check_quorum, _nothing,
        ),
        Exercise(
            "05-failcount", "kill Apache and find the failcount",
            "Kill every Apache process on the node that runs the service (the first node).",
            "What will httpd's failcount on that node be, and which node runs httpd afterwards (migration_threshold 1)?",
            'course.lab.kill_process("{first}", "apache2")', ("failcount", "node"),
            "read it with course.run('{second}', 'crm_failcount --query --resource httpd --node {first}'); "
            "the failcount expires after failure_timeout, so check within it",
            "crm_resource --cleanup --resource httpd", _check_failcount, _restore_failcount,
        ),
        Exercise(
            "06-scores", "cut the gateway and read the scores",
            "Make the gateway stop answering the first node, then read the allocation scores with "
            "`crm_simulate -sL` on the second node.",
            "What is the VIP's allocation score on the first node, and where does the VIP run then?",
            'course.lab.gateway("{first}", reachable=False)', ("score", "node"),
            "pingd drops to 0 after a ping monitor and the dampen delay; the vip-needs-gateway rule then scores "
            "the node -INFINITY; read scores with course.run('{second}', 'crm_simulate -sL')",
            'course.lab.gateway("{first}", reachable=True)', _check_scores, _restore_gateway,
        ),
        Exercise(
            "07-passive", "lose the standby node",
            "Cut the power of the node that does not run the service (the second node).",
            "Does any client notice? Which node is fenced, and does the service move?",
            'course.lab.power_cut("{second}")', ("fenced", "moved"),
            "fencing takes the token timeout plus the fence agent's time; read "
            "course.run('{first}', 'stonith_admin --history {second}')",
            'course.lab.power_on("{second}")', _check_passive, _restore_passive,
        ),
        Exercise(
            "08-move", "a move that expires by itself",
            "Move the VIP to the second node for ten minutes with the day-2 call, and look at the constraint "
            "it leaves (`crm configure show` or `cibadmin --query --scope constraints`).",
            "Which constraint does the move add, and what happens to the service when it expires?",
            'course.run("{first}", "crm_resource --move --resource vip --node {second} --lifetime PT10M")',
            ("constraint",),
            "in notebook 08: day2.move('vip', '{second}', 'PT10M') does the same, predicted first",
            "crm_resource --clear --resource vip", _check_move, _restore_move,
        ),
    )
}


def get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"no exercise {exercise_id!r}; there are: {', '.join(EXERCISES)}") from None


def for_notebook(number: str) -> list[Exercise]:
    return [e for e in EXERCISES.values() if e.notebook == number]


def course(params: Params) -> Course | None:
    """The notebook's course, or None (with the reason printed) where the params name no lab."""
    try:
        return Course(params)
    except NotALab as e:
        print(f"exercises: {e}")
        return None


def wait_for(check: Callable[[], Result], timeout_s: float = 90.0, every_s: float = 0.5) -> Result:
    """Re-check until passed or the deadline (a lab that needs a monitor interval to show the change)."""
    deadline = time.monotonic() + timeout_s
    r = check()
    while not r.passed and time.monotonic() < deadline:
        time.sleep(every_s)
        r = check()
    return r
