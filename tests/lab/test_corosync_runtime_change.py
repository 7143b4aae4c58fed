"""A timing change on a running cluster is a runtime reload: no corosync restart, no failed probe,
and corosync runs with the new values on every node; a change that needs a restart is refused."""

from __future__ import annotations

import pytest

from hakit import notebook
from hakit.failover.watch import HttpProbe
from hakit.stages import corosync, driver

pytestmark = pytest.mark.lab


def runtime(h, key: str) -> str:
    return h.run(["corosync-cmapctl", "-g", f"runtime.config.totem.{key}"]).stdout.rsplit("=", 1)[-1].strip()


def main_pids(hosts) -> dict[str, str]:
    return {n: h.run("systemctl show -p MainPID --value corosync").stdout.strip() for n, h in hosts.items()}


def switch(hosts, params, profile: str) -> driver.StageRun:
    return driver.run_stage(corosync.CorosyncStage(params, profile=profile), hosts, dry_run=False)


def test_profile_switch_reloads_at_runtime_and_the_service_stays_up(cluster2) -> None:
    lab, _ = cluster2
    params = lab.params
    hosts = notebook.connect_nodes(params)
    try:
        before = main_pids(hosts)
        with HttpProbe(str(params.vip.address)) as probe:
            seed = switch(hosts, params, "seed")
            assert seed.plan is not None and any(n.startswith("class: runtime change") for n in seed.plan.notes)
            assert {runtime(h, "token") for h in hosts.values()} == {"3000"}
            assert {runtime(h, "consensus") for h in hosts.values()} == {"3600"}
            fast = switch(hosts, params, "fast")
            assert {runtime(h, "token") for h in hosts.values()} == {"1000"}
            assert {runtime(h, "consensus") for h in hosts.values()} == {"1200"}
        samples = probe.snapshot()
        assert len(samples) > 25 and [s for s in samples if not s.ok] == [], "a probe failed during the reload"
        assert main_pids(hosts) == before, "corosync restarted"
        assert fast.result is not None and "vm-node1  corosync-cfgtool -R" in fast.result.executed
        assert not any("systemctl" in line for line in fast.result.executed)
        assert fast.verification is not None and fast.verification.ok
    finally:
        for h in hosts.values():
            h.close()


def test_a_change_corosync_cannot_make_at_runtime_is_refused_and_nothing_changes(cluster2) -> None:
    lab, _ = cluster2
    params = lab.params.model_copy(update={"cluster": lab.params.cluster.model_copy(update={"name": "renamed"})})
    hosts = notebook.connect_nodes(lab.params)
    try:
        before = {n: h.run(["sha256sum", corosync.CONF]).stdout for n, h in hosts.items()}
        run = driver.StageRun(corosync.CorosyncStage(params), hosts, dry_run=False)
        run.make_plan()
        assert run.plan is not None and "totem.cluster_name" in run.plan.blocked["cluster"]
        with pytest.raises(driver.StageBlocked, match="stops the service for about"):
            run.apply()
        assert {n: h.run(["sha256sum", corosync.CONF]).stdout for n, h in hosts.items()} == before
    finally:
        for h in hosts.values():
            h.close()
