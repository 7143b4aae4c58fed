"""What a fault scenario gets to work with during one trial (kept apart so scenarios need not import the runner)."""

from __future__ import annotations

from dataclasses import dataclass

from ..lab import Lab
from ..params import Params
from ..remote import Host


@dataclass
class TrialContext:
    lab: Lab
    params: Params
    hosts: dict[str, Host]
    active: str
    other: str

    def crm(self, command: str) -> str:
        return self.hosts[self.other].run(command, timeout=60).stdout
