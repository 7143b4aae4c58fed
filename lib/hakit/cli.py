"""Command line: `python -m hakit lab ...|run|prepare|course ...|bench ...`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from collections.abc import Sequence

from .localcmd import LocalCommandError
from .params import ParamsError, load_params

DEFAULT_PARAMS = "params/lab.yaml"
LADDER_PARAMS = "params/lab-qdevice.yaml"  # the ladder's device rungs need a quorum device


def _lab(args: argparse.Namespace):  # noqa: ANN202 - imported lazily to keep --help fast
    from .lab import Lab

    return Lab(load_params(args.params))


def _print_status(d: dict) -> None:
    print(f"lab {d['lab_id']} (cluster {d['cluster']}): {'UP' if d['up'] else 'NOT UP'}")
    img = "built" if d["image_built"] else "not built yet (built on first `lab up`)"
    print(f"  image:    {d['image']} ({img})")
    if d.get("vm_image"):
        vimg = "built" if d["vm_image_built"] else "not built yet (built on first `lab up`)"
        print(f"  vm image: {d['vm_image']} ({vimg})")
        vms = ", ".join(n["name"] for n in d["nodes"] if n["kind"] == "vm")
        print(f"  vm nodes: {vms}: qemu (TCG) with their own kernel, four NICs eth0..eth3; bonding applies there")
    b = d["bonding"]
    print(f"  kernel:   bonding {'available' if b['available'] else 'NOT available'} ({b['reason']})")
    if b["links"] == "slaves":
        print("  links:    slaves (lab.links): container nodes get four NICs, stage 1 bonds them on this kernel")
    else:
        print("  links:    bond-names (lab.links, the default on every kernel): container nodes get one plain link")
        print("            per network, named like the bond (no real bond); address them by role: ring0, ring1")
    print(f"  networks: private bridge {d['bridges']['private']}, public bridge {d['bridges']['public']}; "
          f"this machine: {', '.join(d['host_addresses'].values())}")
    gw = d["gateway"]
    cut = f"; cut for {', '.join(gw['blocked_sources'])}" if gw["blocked_sources"] else ""
    print(f"  gateway:  {gw['address']} (netns {gw['netns']}){cut}; VIP {d['vip']}")
    if d.get("package_mirror"):
        m = d["package_mirror"]
        print(f"  mirror:   {m['url']} {m['state'].upper()} (the nodes' only apt source, as http://{m['name_on_nodes']}/debian)")
    if d.get("bmc"):
        print("  bmc:      " + ", ".join(f"{b['node']} {b['address']} {b['state'].upper()}" for b in d["bmc"])
              + " (IPMI lanplus, fence_ipmilan)")
    if d.get("quorum_device"):
        q = d["quorum_device"]
        qnetd = f", corosync-qnetd {q['qnetd']}" if q.get("qnetd") else ""
        print(f"  qnetd:    {q['host']} {q['address']}:{q['port']} {q['state'].upper()}{qnetd} "
              f"(quorum device host, algorithm {q['algorithm']}; `lab ssh {q['host']}`, `lab power-cut {q['host']}`)")
    print(f"  {'node':<10} {'state':<8} {'system':<10} {'private':<13} {'public':<13} {'mem MiB':>7}  interfaces")
    for n in d["nodes"]:
        mem = f"{n['memory_mib']:.0f}" if n["memory_mib"] is not None else "-"
        if n.get("memory_rss_mib") is not None:
            mem += f" (RSS {n['memory_rss_mib']:.0f})"
        print(f"  {n['name']:<10} {n['state']:<8} {n['system_state'] or '-':<10} {n['private_ip']:<13} "
              f"{n['public_ip']:<13} {mem:>7}  {', '.join(n['interfaces'])}")
        if n["failed_units"]:
            print(f"  {'':<10} failed units: {', '.join(n['failed_units'])}")
    print("  reach a node:")
    print("    python -m hakit lab ssh <node> [command ...]")
    print(f"    ssh -i {d['key_file']} -o UserKnownHostsFile={d['known_hosts']} "
          f"-o StrictHostKeyChecking=yes root@<address>")


def cmd_up(args: argparse.Namespace) -> int:
    lab = _lab(args)
    lab.up()
    _print_status(lab.status_dict())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    d = _lab(args).status_dict(probe=not args.no_probe)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
    else:
        _print_status(d)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    removed = _lab(args).down()
    for r in removed:
        print(f"  removed {r}")
    print("lab down: nothing of the lab is left (processes, mounts, namespaces, links, bridges, rules)")
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    _lab(args).drop(args.node)
    return 0


def cmd_kinds(args: argparse.Namespace) -> int:
    """One line per lab node: its name and how the lab runs it (container or vm); nothing for real hosts."""
    params = load_params(args.params)
    if params.lab is not None:
        for n in params.nodes:
            print(f"{n.name} {params.lab.kind(n.name)}")
    return 0


def cmd_ssh(args: argparse.Namespace) -> int:
    lab = _lab(args)
    lab._known(args.node)  # a node or the qnetd host
    argv = lab.ssh_argv(args.node, tty=not args.command and sys.stdin.isatty())
    if args.command:
        # One argument is a shell command line (pipes and all); several are run as that exact argv.
        cmd = args.command[0] if len(args.command) == 1 else shlex.join(args.command)
        argv += ["--", cmd]
    os.execvp(argv[0], argv)
    return 0  # not reached


def cmd_fault(args: argparse.Namespace) -> int:
    lab = _lab(args)
    a = args.action
    if a == "power-cut":
        lab.power_cut(args.node)
    elif a == "power-on":
        lab.power_on(args.node)
    elif a in ("link-down", "link-up"):
        lab.link(args.node, args.iface, up=a == "link-up")
    elif a in ("gateway-cut", "gateway-restore"):
        lab.gateway(args.node, reachable=a == "gateway-restore")
    elif a in ("bmc-down", "bmc-up"):
        lab.bmc(args.node, available=a == "bmc-up")
    elif a in ("partition", "heal"):
        lab.partition(args.node, cut=a == "partition")
    elif a == "kill":
        sig = signal.Signals[args.signal] if not args.signal.isdigit() else int(args.signal)
        lab.kill_process(args.node, args.process, int(sig))
    return 0


def cmd_bench_lab(args: argparse.Namespace) -> int:
    from .bench import bench_lab

    files = [f.strip() for f in args.params.split(",") if f.strip()]
    for line in bench_lab(files, runs=args.runs, cold=args.cold):
        print(line, flush=True)
    return 0


def cmd_bench_stages(args: argparse.Namespace) -> int:
    from .bench import bench_stages

    if args.runs < 1:
        raise ValueError(f"--runs {args.runs}: use 1 or more")
    files = [f.strip() for f in args.params.split(",") if f.strip()]
    for line in bench_stages(files, runs=args.runs, progress=lambda m: print(m, flush=True)):
        print(line, flush=True)
    return 0


def cmd_bench_failover(args: argparse.Namespace) -> int:
    from .bench import bench_failover

    if args.trials < 1:
        raise ValueError(f"--trials {args.trials}: use 1 or more")
    if args.ladder:
        from .ladder import bench_ladder

        if args.profiles is not None:
            raise ValueError("--profiles with --ladder: each rung has its own profile; choose rungs with --rungs")
        text, out = bench_ladder(args.params or LADDER_PARAMS, args.trials, args.scenarios, args.rungs or "all",
                                 progress=lambda m: print(m, flush=True), load=args.load)
        print(text)
        print(f"results: {out}/failover.csv, {out}/ladder.csv, {out}/floors.csv, {out}/goals.csv; "
              f"charts: {out}/ladder.png, {out}/timelines.png")
        return 0
    if args.rungs is not None:
        raise ValueError("--rungs needs --ladder")
    profiles = [p.strip() for p in (args.profiles or "seed,fast").split(",") if p.strip()]
    text, out = bench_failover(args.params or DEFAULT_PARAMS, profiles, args.trials, args.scenarios, load=args.load)
    print(text)
    print(f"results: {out}/failover.csv, charts: {out}/downtime.png, {out}/timelines.png")
    return 0


def cmd_bench_change(args: argparse.Namespace) -> int:
    from .benchchange import bench_change

    text, out = bench_change(args.params, args.trials)
    print(text)
    print(f"results: {out}/change.csv, {out}/change-medians.csv, chart: {out}/change.png")
    return 0


def _minutes(text: str) -> float:
    """--minutes: a finite number greater than 0 (argparse prints the message and exits 2 otherwise)."""
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"{text}: use a number of minutes greater than 0 (e.g. 10 or 0.5)")
    return v


def cmd_bench_soak(args: argparse.Namespace) -> int:
    from .bench import bench_soak
    from .failover.soak import report_lines

    result, out = bench_soak(args.params, args.minutes, args.profile, progress=lambda m: print(m, flush=True),
                             load=args.load)
    print(f"soak of {result['cluster']} ({result['profile']} profile, fencing "
          f"{'on' if result['fencing'] else 'off'}){', INTERRUPTED' if result['interrupted'] else ''}:")
    for line in report_lines(result):
        print("  " + line)
    print(f"results: {out}/soak.json, probes: {out}/probes.csv")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .run import RunFailed, run

    try:
        out = run(
            args.params, stages=args.stages, dry_run=args.dry_run, failover=args.failover, scenarios=args.scenarios,
            load=args.load,
            out_root=Path(args.out) if args.out else None, html=not args.no_html,
            command="python -m hakit " + shlex.join(sys.argv[1:]),
        )
    except RunFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"done: {out / 'index.html'}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare

    out = prepare(args.params, args.out, trainer=args.trainer, status=args.status)
    print(f"{'trainer' if args.trainer else 'training'} copies in {out}, the course's index in {out / 'index.html'}; "
          "start JupyterLab on them with:")
    print(f"  .venv/bin/jupyter lab --notebook-dir {out} --ip 127.0.0.1 --no-browser --allow-root")
    print(f"then open {sorted(p.name for p in out.glob('[0-9][0-9]_*.ipynb'))[0]} first: its first page says where to begin")
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    from .prepare import course_index

    index = course_index(args.params, args.out, status=args.course_cmd == "status")
    print(f"course index: {index}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check
    from .notebook import connect_nodes, load

    params = load(args.params)  # bad input: ParamsError -> exit 2 (main)
    hosts = connect_nodes(params)
    try:
        rep = check(params, hosts)
    finally:
        for h in hosts.values():
            h.close()
    for line in rep.lines():
        print(line)
    return rep.exit_code


def cmd_unlock(args: argparse.Namespace) -> int:
    from . import lock
    from .notebook import connect_nodes, load

    params = load(args.params)
    hosts = connect_nodes(params)
    try:
        found = lock.holders(hosts)
        live = {n: h for n, h in found.items() if h is not None and not h.stale}
        refuse = bool(live) and not args.force and not args.show
        if not args.show and not refuse:
            lock.clear(hosts)
    finally:
        for h in hosts.values():
            h.close()
    for node, holder in found.items():
        state = f"held by {holder}" + (" (stale)" if holder.stale else "") if holder else "not locked"
        print(f"{node}: {state}" + ("" if args.show or refuse or not holder else ": cleared"))
    if refuse:
        print(f"not cleared: {', '.join(live)} held by a process that may still run; wait for it, or clear with "
              "--force if you know it stopped (e.g. on another machine)")
        return 1
    return 0


def cmd_rolling(args: argparse.Namespace) -> int:
    from . import rolling
    from .notebook import connect_nodes, load

    params = load(args.params)
    if args.work == "pacemaker-restart" and not args.node:
        raise ValueError("rolling pacemaker-restart needs --node NODE (the node whose pacemaker restarts "
                         "under maintenance-mode)")
    hosts = connect_nodes(params)
    say = (lambda m: print(("(dry run) " if args.dry_run else "") + m, flush=True))
    try:
        if args.work == "pacemaker-restart":
            rolling.maintenance_restart(params, hosts, args.node, dry_run=args.dry_run, progress=say)
            return 0
        r = rolling.rollout(params, hosts, args.work, dry_run=args.dry_run, rejoin_timeout_s=args.rejoin_timeout,
                            progress=say)
        if not args.dry_run:
            print(r.frame().to_string(index=False))
    finally:
        for h in hosts.values():
            h.close()
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    from . import membership
    from .notebook import connect_nodes, load

    params = load(args.params)
    membership.remaining_params(params, args.name)  # bad input stops here, before any connection
    hosts = connect_nodes(params)
    say = (lambda m: print(("(dry run) " if args.dry_run else "") + m, flush=True))
    try:
        r = membership.remove(params, hosts, args.name, dry_run=args.dry_run, progress=say)
        if not args.dry_run:
            print(f"{args.name} removed in {r.seconds}; now take it out of {args.params}: the stages then find "
                  "nothing to change")
    finally:
        for h in hosts.values():
            h.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hakit", description="HA cluster runbooks and local lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    lab = sub.add_parser("lab", help="the local lab of Debian nodes (systemd-nspawn)")
    lsub = lab.add_subparsers(dest="lab_cmd", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:  # noqa: ANN001
        sp = lsub.add_parser(name, help=help)
        sp.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file (default {DEFAULT_PARAMS})")
        sp.set_defaults(func=func)
        return sp

    add("up", cmd_up, "build the image if needed, boot every node, wait for SSH")
    st = add("status", cmd_status, "show nodes, addresses, state, how to reach them")
    st.add_argument("--json", action="store_true", help="machine-readable output for scripts")
    st.add_argument("--no-probe", action="store_true", help="do not ssh into nodes")
    add("down", cmd_down, "remove everything the lab made (image cache stays)")
    dr = add("drop", cmd_drop, "take one node out of a running lab (its BMC, processes, disk, network); the others "
                               "run on. Take it out of the cluster first: `hakit node remove NODE`")
    dr.add_argument("node")
    add("kinds", cmd_kinds, "list each node and how the lab runs it: container or vm "
                            "(`make setup` installs qemu only when one is a vm)")
    s = add("ssh", cmd_ssh, "open a shell on a node, or run a command (exit code passed through)")
    s.add_argument("node")
    s.add_argument("command", nargs=argparse.REMAINDER)
    for action, help in (
        ("power-cut", "kill a node at once, like pulling its power plug"),
        ("power-on", "boot a powered-off node and wait for SSH"),
        ("gateway-cut", "the gateway stops answering this node"),
        ("gateway-restore", "undo gateway-cut"),
        ("bmc-down", "the node's virtual BMC stops answering (fencing it fails; the node runs on)"),
        ("bmc-up", "undo bmc-down"),
        ("partition", "cut all traffic between this node and its peers (both rings); clients still reach it"),
        ("heal", "undo partition"),
    ):
        f = add(action, cmd_fault, help)
        f.add_argument("node")
        f.set_defaults(action=action)
    for action, help in (("link-down", "pull a node's cables: a network's (by role) or one interface's"),
                         ("link-up", "plug them back in")):
        f = add(action, cmd_fault, help)
        f.add_argument("node")
        f.add_argument("iface", metavar="link", help="a role: ring0 (or private), ring1 (or public), every cable "
                       "of that network in any layout; or an interface inside the node, e.g. bond0, eth2")
        f.set_defaults(action=action)
    k = add("kill", cmd_fault, "signal every process with this exact name on a node")
    k.add_argument("node")
    k.add_argument("process", help="exact process name, e.g. apache2 or corosync")
    k.add_argument("--signal", default="SIGKILL", help="signal name or number (default SIGKILL)")
    k.set_defaults(action="kill")
    r = sub.add_parser("run", help="run the stage notebooks headlessly (papermill) into runs/")
    r.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file (default {DEFAULT_PARAMS})")
    r.add_argument("--stages", default="all", help="all, a number, a range (1-3) or a list (1,3)")
    r.add_argument("--dry-run", action="store_true", help="show plans only; change nothing")
    r.add_argument("--failover", action="store_true", help="also run notebooks/07_failover_tests.ipynb at the end")
    r.add_argument("--scenarios", default="", help="with --failover: comma-separated scenario names, 'default' "
                   "(the notebook's default), 'extended' (pacemakerd-kill ... gateway-loss-both) or 'all'")
    r.add_argument("--load", default="", help="with --failover: a client load on the VIP during every trial, RATE or "
                   "RATE,KEEPALIVE,FRESH (e.g. 200 or 200,4,4); default none")
    r.add_argument("--out", default="", help="folder to create the run folder in (default runs/)")
    r.add_argument("--no-html", action="store_true", help="skip the HTML export of each notebook")
    r.set_defaults(func=cmd_run)
    ck = sub.add_parser("check", help="read the live cluster and list every drift from the params "
                                      "(exit 0 clean, 1 drift, 2 bad input); changes nothing")
    ck.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file (default {DEFAULT_PARAMS})")
    ck.set_defaults(func=cmd_check)
    u = sub.add_parser("unlock", help="clear the cluster lock a crashed or interrupted run left on the nodes "
                                      "(says whose it was)")
    u.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file (default {DEFAULT_PARAMS})")
    u.add_argument("--show", action="store_true", help="only say who holds it; change nothing")
    u.add_argument("--force", action="store_true", help="clear it even if its holder may still be running")
    u.set_defaults(func=cmd_unlock)
    ro = sub.add_parser("rolling", help="node by node without stopping the service: restart (corosync + pacemaker) "
                                        "or upgrade (apt-get upgrade), each node in standby meanwhile; or "
                                        "pacemaker-restart of one node under maintenance-mode (nothing moves)")
    ro.add_argument("work", choices=["restart", "upgrade", "pacemaker-restart"])
    ro.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file (default {DEFAULT_PARAMS})")
    ro.add_argument("--node", default="", help="pacemaker-restart: the node")
    ro.add_argument("--dry-run", action="store_true", help="list the steps; change nothing")
    ro.add_argument("--rejoin-timeout", type=float, default=180.0,
                    help="s a node may take to rejoin the membership after its work before the rollout stops")
    ro.set_defaults(func=cmd_rolling)
    nd = sub.add_parser("node", help="change the cluster's membership (adding a node: add it to the params and run "
                                     "the stages)")
    ndsub = nd.add_subparsers(dest="node_cmd", required=True)
    nr = ndsub.add_parser("remove", help="drain a node, stop it and take it out of the CIB and the nodelist while "
                                         "the service runs; the params must still list it")
    nr.add_argument("name", help="the node to remove")
    nr.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file that still lists the node (default "
                                                             f"{DEFAULT_PARAMS})")
    nr.add_argument("--dry-run", action="store_true", help="show the plan; change nothing")
    nr.set_defaults(func=cmd_node)
    pr = sub.add_parser("prepare", help="parameter-filled notebook copies for a trainee (JupyterLab)")
    pr.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file (default {DEFAULT_PARAMS})")
    pr.add_argument("--out", default="training", help="folder for the copies (default training/)")
    pr.add_argument("--trainer", action="store_true", help="keep the exercises' answers (a trainer's copy)")
    pr.add_argument("--status", action="store_true", help="also run every exercise's checker on the lab (read-only) "
                    "and show the result in index.html")
    pr.set_defaults(func=cmd_prepare)
    co = sub.add_parser("course", help="the training folder's index.html: references and exercise states")
    csub = co.add_subparsers(dest="course_cmd", required=True)
    for name, help in (("index", "rewrite index.html and the reference runs beside the notebooks (no lab needed)"),
                       ("status", "run every exercise's checker on the lab (read-only) and write the states "
                                  "into index.html")):
        cp = csub.add_parser(name, help=help)
        cp.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file (default {DEFAULT_PARAMS})")
        cp.add_argument("--out", default="training", help="the training folder (default training/)")
        cp.set_defaults(func=cmd_course)
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = bench.add_subparsers(dest="bench_cmd", required=True)
    bl = bsub.add_parser("lab", help="lab start-up time and memory (takes the named labs down and up)")
    bl.add_argument("--params", default="params/lab.yaml,params/lab-3node.yaml", help="comma-separated params files")
    bl.add_argument("--runs", type=int, default=5, help="runs per params file (median reported)")
    bl.add_argument("--cold", action="store_true", help="also time a cold image build into a scratch cache")
    bl.set_defaults(func=cmd_bench_lab)
    bst = bsub.add_parser("stages", help="median time of a no-op re-run of stages 0-6, nodes in parallel and one "
                                         "after another (brings the labs up and builds their clusters first)")
    bst.add_argument("--params", default="params/lab.yaml,params/lab-3node.yaml", help="comma-separated params files")
    bst.add_argument("--runs", type=int, default=5, help="runs per mode and params file (median reported)")
    bst.set_defaults(func=cmd_bench_stages)
    bf = bsub.add_parser("failover", help="failover suite under each timing profile; prints median client downtime")
    bf.add_argument("--params", default=None, help=f"params file of a built lab cluster (default {DEFAULT_PARAMS}; "
                    f"with --ladder {LADDER_PARAMS}, whose lab is rebuilt for each rung)")
    bf.add_argument("--profiles", default=None, help="comma-separated timing profiles (default seed,fast)")
    bf.add_argument("--trials", type=int, default=5, help="trials per scenario and profile or rung (default 5)")
    bf.add_argument("--ladder", action="store_true",
                    help="the ladder, fencing on: seed -> fast -> fast+qdevice -> fast+qdevice+cloned -> "
                    "lan+qdevice+cloned, each median beside the floor its settings allow. Fresh lab nodes and "
                    "stages 00-06 for each new structure (device, layout). All five rungs, 5 trials of the default "
                    "seven: 93 min here (175 trials, 3 builds)")
    bf.add_argument("--rungs", default=None, help="with --ladder: 'all' (default) or comma-separated rung names")
    bf.add_argument("--scenarios", default="default",
                    help="comma-separated scenario names, 'default' (the six of the issue plus split-brain), "
                    "'extended' (pacemakerd-kill, apache-kill-loop, resource-fail, passive-crash, gateway-loss-both) "
                    "or 'all'")
    bf.add_argument("--load", default="", help="a client load on the VIP during every trial: RATE or "
                    "RATE,KEEPALIVE,FRESH (e.g. 200 or 200,4,4: requests/s, kept-alive and fresh connections); "
                    "default none")
    bf.set_defaults(func=cmd_bench_failover)
    bc = bsub.add_parser("change", help="client downtime and failed probes per change to the running cluster: profile "
                                        "switch fast -> seed -> fast, node add 2 -> 3, node remove 3 -> 2, rolling "
                                        "restart, maintenance-mode pacemaker restart")
    bc.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file of a built two-node lab cluster (default "
                                                             f"{DEFAULT_PARAMS})")
    bc.add_argument("--trials", type=int, default=1, help="rounds of all changes; the median is reported (default 1: "
                                                          "a round takes minutes; the issue asks for 3)")
    bc.set_defaults(func=cmd_bench_change)
    bs = bsub.add_parser("soak", help="watch a healthy cluster for a while (nothing injected); prints client "
                                      "success ratio, spurious failovers, dual-VIP ARP samples")
    bs.add_argument("--params", default=DEFAULT_PARAMS, help=f"params file of a built lab cluster (default {DEFAULT_PARAMS})")
    bs.add_argument("--minutes", type=_minutes, default=10.0, help="how long to watch, in minutes (> 0; default 10)")
    bs.add_argument("--profile", default="fast", help="timing profile to switch the cluster to first (default fast)")
    bs.add_argument("--load", default="", help="a client load on the VIP for the whole soak: RATE or "
                    "RATE,KEEPALIVE,FRESH (e.g. 200 or 200,4,4); default none")
    bs.set_defaults(func=cmd_bench_soak)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except (LocalCommandError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
