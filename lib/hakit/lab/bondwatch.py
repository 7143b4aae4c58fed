"""Time a bond's slave switch on a VM lab node, on the guest's own clock.

A small bash loop on the node polls one slave's carrier and the bond's active
slave every few milliseconds (bash builtins only: no process per poll, which
would dominate under TCG). The lab pulls or plugs the slave's cable through
the QEMU monitor once the loop is ready; the loop reports when the guest saw
the carrier change and when the bonding driver switched the active slave.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lab import Lab

# $1 bond, $2 slave to watch, $3 give up after this many seconds.
WATCH_SCRIPT = r"""
set -u
b=$1 s=$2 limit=$3
f=$(mktemp -u /tmp/hakit-watch.XXXXXX); mkfifo "$f"; exec 3<>"$f"; rm -f "$f"   # read -t on it = sleep
read -r a0 < "/sys/class/net/$b/bonding/active_slave"
read -r c0 < "/sys/class/net/$s/carrier"
echo "ready $a0 $c0"
t_carrier=-
end=$(( ${EPOCHREALTIME%.*} + limit ))
while [ "${EPOCHREALTIME%.*}" -lt "$end" ]; do
    read -r c < "/sys/class/net/$s/carrier"
    read -r a < "/sys/class/net/$b/bonding/active_slave" || a=
    now=$EPOCHREALTIME
    if [ "$t_carrier" = - ] && [ "$c" != "$c0" ]; then t_carrier=$now; fi
    if [ "$t_carrier" != - ] && [ "$a" != "$a0" ]; then echo "switched $t_carrier $now $a"; exit 0; fi
    read -t 0.002 -u 3 _ || true
done
echo "timeout $t_carrier"
exit 1
"""


@dataclass(frozen=True)
class SlaveSwitch:
    """One measured switch: which cable, from which slave to which, and how long the driver took."""

    bond: str
    cable: str
    plugged: bool  # False: cable pulled (failover), True: plugged back (failback to the primary)
    before: str
    after: str
    switch_ms: float  # guest saw the carrier change -> bonding driver changed the active slave


def measure_switch(lab: Lab, node: str, bond: str, cable: str, plug: bool, timeout_s: int = 20) -> SlaveSwitch:
    """Pull (plug=False) or plug back (plug=True) `cable` and time the bond's switch of active slave."""
    argv = lab.ssh_argv(node) + ["--", "bash", "-c", _quote(WATCH_SCRIPT), "watch", bond, cable, str(timeout_s)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"the watch loop on {node} did not start: {proc.stderr.read() if proc.stderr else ''}")
        before = ready[1]
        lab.link(node, cable, up=plug)
        out, err = proc.communicate(timeout=timeout_s + 15)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    words = out.split()
    if not words or words[0] != "switched":
        raise RuntimeError(
            f"{bond} on {node} did not switch its active slave within {timeout_s} s after the {cable} cable was "
            f"{'plugged in' if plug else 'pulled'} ({out.strip() or err.strip()})"
        )
    t_carrier, t_switch, after = float(words[1]), float(words[2]), words[3]
    return SlaveSwitch(bond, cable, plug, before, after, round((t_switch - t_carrier) * 1000, 1))


def _quote(script: str) -> str:
    """Single-quote for the remote shell (ssh joins its arguments into one command line)."""
    return "'" + script.replace("'", "'\"'\"'") + "'"
