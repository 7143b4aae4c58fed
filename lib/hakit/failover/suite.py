"""The failover notebook's work in one object: what will be broken, what bounds each outage,
the run itself, its charts and its record (so notebook 07 is one call per cell)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import record
from ..errors import ParamsError
from ..fencing import fence_wait_s
from ..lab import Lab
from ..notebook import connect_nodes, repo_root
from ..params import Params
from ..profiles import Profile, get_profile
from ..stages.base import StageResult
from ..stages.driver import JOURNAL_DIR
from . import charts, runner
from . import scenarios as catalogue
from .load import LoadSpec
from .profile import use_profile
from .runner import fence_delay_s

STAGE = "07 failover tests"



def bounds(params: Params, prof: Profile) -> pd.DataFrame:
    """The floor each scenario's outage cannot beat for this profile (before the service's own start)."""
    r = prof.resources
    detect = prof.failure_detection_ms(len(params.nodes)) / 1000
    fenced = params.pacemaker.stonith_enabled
    delay, wait = fence_delay_s(params), fence_wait_s(params)
    policy = params.pacemaker.resources
    kills, moves_at = catalogue.loop_kills(policy), catalogue.loop_moves(policy)
    rows = [
        ("node-crash", detect + delay, "corosync: token + consensus before the node is declared lost"
         + (f"; then the {delay:g} s fence delay (the node is off already: the agent's first status query says so)"
            if fenced else "")),
        ("corosync-kill", wait,
         (f"the node serves on until the agent powers it off, then the agent's {wait:g} s power wait" if fenced
          else "none: the node serves on, and after token + consensus its peer starts a second copy")
         + ("; with the quorum device systemd starts corosync again within a second, and a node back before "
            "its peer fences it is probed and its service recovered: no fixed floor" if params.quorum_device else "")),
        ("apache-crash", r.httpd_monitor, "worst case until the next httpd monitor notices (then a restart in place, or a move "
         "with migration_threshold 1)"),
        ("gateway-loss", r.ping_monitor + r.ping_dampen,
         "ping monitor + dampen before pingd drops to 0 (the move comes after)"),
        ("planned-move", 0, "no detection: stop on one node, start on the other"),
        ("ring0-loss", 0, "knet moves corosync to ring1; pacemaker never notices"),
        ("split-brain", 0, "the preferred node keeps the service: it fences its peer, which waits the delay"
         if fenced else "nothing stops the second copy: both nodes serve"),
        ("fence-failure", 60.0, "no recovery before the BMC is back (60 s here), then the next fencing attempt"),
        ("pacemakerd-kill", 0, "nothing waits: systemd restarts pacemakerd after 1 s and the service runs on"),
        ("apache-kill-loop", kills * r.httpd_monitor,
         f"worst case one httpd monitor per kill ({kills} kills"
         + (f", the last one moves it: migration_threshold {policy.migration_threshold})" if moves_at else ", all restarted in place)")),
        ("resource-fail", 0, "no detection: the controller records the failure at once, then stop and start"),
        ("passive-crash", 0, "nothing to wait for: the service never leaves the active node"),
        ("gateway-loss-both", r.ping_monitor + r.ping_dampen,
         "ping monitor + dampen until pingd is 0 on both nodes and the service stops; it stays stopped until a node "
         "regains the gateway, then the same wait again before it starts there"),
    ]
    return pd.DataFrame(rows, columns=["scenario", "floor_s", "why"])


@dataclass
class FailoverSuite:
    params: Params
    scenarios: str = "default"
    trials: int = 1
    profile: str = ""
    dry_run: bool = True
    record_dir: str = ""
    load: LoadSpec | None = None  # a client load on the VIP during every trial (failover.load)
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    done: list[runner.Trial] = field(default_factory=list)
    result: StageResult | None = None
    _figs: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.params.lab is None:
            raise ParamsError("failover tests inject faults through the lab; this params file has no lab section")
        if self.trials < 1:
            raise ParamsError(f"trials={self.trials}: use 1 or more")
        self.chosen = catalogue.select_for(self.scenarios, self.params)
        self.prof = get_profile(self.profile or self.params.cluster.profile)

    def __str__(self) -> str:
        return (f"profile {self.prof.name}: {self.prof.summary}; fencing: {self.params.pacemaker.stonith_enabled}"
                + (f"; client load: {self.load.describe()}" if self.load else ""))

    def catalogue(self) -> pd.DataFrame:
        pm = self.params.pacemaker
        return pd.DataFrame([{"scenario": s.name, "fault": s.summary,
                              "expected": s.expected_text(pm.resources, pm.cloned_apache)} for s in self.chosen])

    def bounds(self) -> pd.DataFrame:
        b = bounds(self.params, self.prof)
        return b[b["scenario"].isin([s.name for s in self.chosen])].reset_index(drop=True)

    def run(self) -> pd.DataFrame:
        """Dry run: say what would run. Otherwise switch the cluster to the profile and run every trial."""
        res = StageResult(STAGE, dry_run=self.dry_run)
        if self.dry_run:
            res.add("cluster", "not applied",
                    f"dry run; would run {len(self.chosen)} scenario(s) x {self.trials} trial(s)"
                    + (f" under a client load of {self.load.describe()}" if self.load else ""))
            self.result = res
            return self.frame
        hosts = connect_nodes(self.params)
        try:
            save_dir = Path(self.record_dir) if self.record_dir else repo_root() / "runs" / "manual-failover"
            for line in use_profile(hosts, self.params, self.prof.name, save_dir):
                print(line, flush=True)
        finally:
            for h in hosts.values():
                h.close()
        lab = Lab(self.params, progress=lambda _m: None)
        self.frame, self.done = runner.run_suite(lab, self.params, self.chosen, self.trials, self.prof.name,
                                                 progress=lambda m: print(m, flush=True), load=self.load)
        bad = int((~self.frame["ok"]).sum())
        res.add("cluster", "failed" if bad else "unchanged",
                f"{len(self.frame)} trial(s), {bad} broke a correctness rule; the cluster was restored after each")
        self.result = res
        return self.frame

    def timelines(self):
        if self.done and "timelines.png" not in self._figs:
            self._figs["timelines.png"] = charts.timelines(self.done, f"profile {self.prof.name}")
        return self._figs.get("timelines.png")

    def downtime(self):
        if not self.frame.empty and "downtime.png" not in self._figs:
            self._figs["downtime.png"] = charts.downtime_plot(self.frame)
        return self._figs.get("downtime.png")

    def medians(self) -> pd.DataFrame:
        return runner.medians(self.frame) if not self.frame.empty else pd.DataFrame()

    def save(self) -> record.StageRecord:
        if self.result is None:
            self.run()
        assert self.result is not None
        artifacts: dict[str, object] = {}
        if not self.frame.empty:
            artifacts = {"failover.csv": self.frame, "medians.csv": self.medians(),
                         "timelines.png": self.timelines(), "downtime.png": self.downtime(),
                         JOURNAL_DIR: {t.log_name: t.files() for t in self.done}}
        return record.save(self.result, self.record_dir, artifacts=artifacts)

    def raise_if_failed(self) -> None:
        if not self.frame.empty and not self.frame["ok"].all():
            bad = self.frame[~self.frame["ok"]]
            raise runner.TrialFailed("; ".join(f"{r.scenario} #{r.trial}: {r.problems} (cluster logs: {r.logs}/)"
                                               for r in bad.itertuples()))
