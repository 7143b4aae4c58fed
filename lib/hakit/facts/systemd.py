"""systemd units: active and enabled state of named units, read in one command."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .base import Fact


@dataclass(frozen=True)
class UnitState:
    unit: str
    active: str  # systemctl is-active: active, inactive, failed, activating, ...
    enabled: str  # systemctl is-enabled: enabled, disabled, masked, ... or "not-found"

    @property
    def is_active(self) -> bool:
        return self.active == "active"

    @property
    def is_enabled(self) -> bool:
        return self.enabled == "enabled"

    def __str__(self) -> str:
        return f"{self.active}, {self.enabled}"


def parse_unit_states(text: str) -> dict[str, UnitState]:
    """Lines ``unit active enabled`` (as `unit_states` prints them) -> unit -> state."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        unit = parts[0]
        active = parts[1] if len(parts) > 1 else "unknown"
        enabled = parts[2] if len(parts) > 2 else "not-found"
        out[unit] = UnitState(unit, active, enabled)
    return out


def unit_states(*units: str) -> Fact[dict[str, UnitState]]:
    names = " ".join(shlex.quote(u) for u in units)
    cmd = (f"for u in {names}; do printf '%s %s %s\\n' \"$u\" \"$(systemctl is-active \"$u\" 2>/dev/null)\" "
           "\"$(systemctl is-enabled \"$u\" 2>/dev/null)\"; done")
    return Fact(f"systemd units {', '.join(units)}", cmd, parse_unit_states)


def state_of(states: dict[str, UnitState], unit: str) -> UnitState:
    """A unit's state; one the probe did not list counts as inactive and not found."""
    return states.get(unit) or UnitState(unit, "unknown", "not-found")
