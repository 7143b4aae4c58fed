"""Timing profiles: named, validated sets of corosync totem timeouts and the pacemaker
timings that go with them.

A profile is chosen by name in the params (``cluster.profile``) and rendered
into ``totem { }`` (stage 3), pacemaker's ``dc-deadtime`` (stage 4, seeded by
stage 3 on a cold start) and the resources' monitor intervals (stage 5).
Validation mirrors what corosync 3 itself accepts or documents, so a bad
profile fails here and not when corosync refuses to start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hakit.errors import ParamsError

# corosync's MINIMUM_TIMEOUT: three ticks of its 100 Hz timer (exec/totemconfig.c).
MIN_TIMEOUT_MS = 30
# corosync derives token_retransmit = token / (retransmits + 0.2) and
# hold = token_retransmit * 0.8 - 10 ms; both must stay above MIN_TIMEOUT_MS.
_TICK_MS = 10
# corosync.conf(5): "The minimum value for consensus must be 1.2 * token".
CONSENSUS_FACTOR = 1.2


class ProfileError(ParamsError):
    """An unknown profile name, or a profile that does not fit the cluster."""


class ResourceTimings(BaseModel):
    """How often pacemaker checks each resource, in whole seconds (stages 4-5).

    Client-visible downtime after a failure is bounded below by these: a
    crashed Apache is noticed at the next ``httpd_monitor`` at the latest, a
    lost gateway after ``ping_monitor`` + ``ping_dampen``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    vip_monitor: int = Field(ge=1, le=3600, description="s between IPaddr2 monitors")
    httpd_monitor: int = Field(ge=1, le=3600, description="s between apache status checks")
    ping_monitor: int = Field(ge=1, le=3600, description="s between gateway pings")
    ping_dampen: int = Field(ge=0, le=3600, description="s attrd waits before publishing a pingd change")
    ping_attempts: int = Field(ge=1, le=10, description="pings per check")
    ping_timeout: int = Field(ge=1, le=60, description="s to wait for each ping reply")
    resource_stickiness: int | None = Field(
        default=None, ge=0, description="rsc_defaults resource-stickiness; None leaves pacemaker's default (0)"
    )

    @model_validator(mode="after")
    def _ping_fits(self) -> "ResourceTimings":
        worst = self.ping_attempts * self.ping_timeout
        if worst >= 60:
            raise ValueError(
                f"ping_attempts {self.ping_attempts} x ping_timeout {self.ping_timeout} s = {worst} s "
                "does not fit the ping monitor's 60 s operation timeout; lower either"
            )
        return self


class Profile(BaseModel):
    """Totem timeouts in milliseconds (counts for the last two fields).

    ``token_coefficient`` is corosync 3's addition: with 3 or more nodes the
    real token timeout is ``token + (nodes - 2) * token_coefficient``
    (default 650 ms). ``consensus`` is not rescaled when set explicitly, so
    ``check_cluster_size`` re-checks the 1.2 x token rule for the real size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    summary: str = Field(description="one line for notebooks and records")
    token: int = Field(gt=0, description="ms without the token before a node is declared lost")
    token_coefficient: int = Field(ge=0, description="ms added to token per node beyond 2")
    consensus: int = Field(gt=0, description="ms to agree on a new membership")
    join: int = Field(gt=0, description="ms to wait for join messages")
    max_messages: int = Field(ge=1, le=1000, description="messages sent per token visit")
    token_retransmits_before_loss_const: int = Field(ge=1, le=100)
    resources: ResourceTimings = Field(description="pacemaker monitor intervals for the article's resources")
    dc_deadtime: int | None = Field(
        default=None, ge=1, le=3600,
        description="s pacemaker's controller waits to hear from a DC before it calls an election "
                    "(cluster option dc-deadtime); None leaves pacemaker's default (20 s)")

    @model_validator(mode="after")
    def _corosync_rules(self) -> Profile:
        for field in ("token", "consensus", "join"):
            value = getattr(self, field)
            if value < MIN_TIMEOUT_MS:
                raise ValueError(
                    f"{field} {value} ms is below corosync's minimum of {MIN_TIMEOUT_MS} ms; "
                    f"use at least {MIN_TIMEOUT_MS}"
                )
        need = _min_consensus(self.token)
        if self.consensus < need:
            raise ValueError(
                f"consensus {self.consensus} ms is below 1.2 x token ({self.token} ms); "
                f"corosync requires consensus >= {need} ms"
            )
        if self.consensus < self.join:
            raise ValueError(
                f"consensus {self.consensus} ms is below join {self.join} ms; "
                "corosync requires consensus >= join"
            )
        retransmit = self.token / (self.token_retransmits_before_loss_const + 0.2)
        hold = retransmit * 0.8 - _TICK_MS
        if hold < MIN_TIMEOUT_MS:
            raise ValueError(
                f"token_retransmits_before_loss_const {self.token_retransmits_before_loss_const} "
                f"with token {self.token} ms gives a token hold time of {hold:.0f} ms, below "
                f"corosync's minimum of {MIN_TIMEOUT_MS} ms; raise token or lower the count"
            )
        problem = self._dc_deadtime_problem(2)
        if problem:
            raise ValueError(problem)
        return self

    def _dc_deadtime_problem(self, node_count: int) -> str | None:
        # A starting node must be able to hear a DC across one membership change (a node lost
        # or joining while it waits), or it calls a needless election.
        if self.dc_deadtime is None:
            return None
        change = self.failure_detection_ms(node_count)
        if self.dc_deadtime * 1000 > change:
            return None
        return (f"dc_deadtime {self.dc_deadtime} s is not above token + consensus ({change} ms with "
                f"{node_count} nodes), the time corosync may take to settle a membership change; use at "
                f"least {change // 1000 + 1} s, or null for pacemaker's default (20 s)")

    @property
    def dc_deadtime_value(self) -> str | None:
        """dc-deadtime as the CIB holds it ("5s"), or None for pacemaker's default."""
        return None if self.dc_deadtime is None else f"{self.dc_deadtime}s"

    def effective_token(self, node_count: int) -> int:
        """The token timeout corosync really uses for a cluster of ``node_count`` nodes."""
        extra = max(0, node_count - 2)
        return self.token + extra * self.token_coefficient

    def check_cluster_size(self, node_count: int) -> None:
        """Raise ProfileError if consensus (or dc_deadtime) is too small for the size-scaled token."""
        token = self.effective_token(node_count)
        need = _min_consensus(token)
        if self.consensus < need:
            raise ProfileError(
                f"profile {self.name!r}: with {node_count} nodes corosync's token is "
                f"{self.token} + {node_count - 2} x token_coefficient {self.token_coefficient} = "
                f"{token} ms, so consensus must be >= {need} ms but is {self.consensus} ms; "
                "raise consensus or lower token_coefficient in the profile"
            )
        problem = self._dc_deadtime_problem(node_count)
        if problem:
            raise ProfileError(f"profile {self.name!r}: {problem}")

    def failure_detection_ms(self, node_count: int) -> int:
        """Worst case from a node dying to a new membership: token loss plus consensus."""
        return self.effective_token(node_count) + self.consensus


def _min_consensus(token: int) -> int:
    return math.ceil(round(CONSENSUS_FACTOR * token, 6))


SEED = Profile(
    name="seed",
    summary="the classic article's timings: token 3 s, consensus 3.6 s",
    token=3000,
    # corosync 1.x (the article's stack) had no coefficient: 0 keeps its timings at any size.
    token_coefficient=0,
    consensus=3600,
    join=60,
    max_messages=20,
    token_retransmits_before_loss_const=10,
    resources=ResourceTimings(
        vip_monitor=10, httpd_monitor=10, ping_monitor=15, ping_dampen=5, ping_attempts=3, ping_timeout=2
    ),
)

FAST = Profile(
    name="fast",
    summary="quick failover on a LAN: token 1 s, consensus 1.2 s",
    token=1000,
    token_coefficient=0,
    consensus=1200,
    join=60,
    max_messages=20,
    token_retransmits_before_loss_const=10,
    resources=ResourceTimings(
        vip_monitor=5, httpd_monitor=1, ping_monitor=2, ping_dampen=1, ping_attempts=2, ping_timeout=1
    ),
    dc_deadtime=5,
)
"""Why these ``fast`` values (an attribute docstring, read by Sphinx):

- token 1000 ms is a tuned value (corosync's own default since 3.1 is token 3000 ms,
  consensus 3600 ms: the article's figures, which ``seed`` keeps) and ample on a LAN, where the token circles a few nodes
  in well under a millisecond; it cuts failure detection to a third.
- consensus 1200 ms is the smallest value corosync allows (1.2 x token). When a
  node really dies the survivors may wait out consensus before forming the new
  membership, so a new membership stands within about token + consensus = 2.2 s
  (seed: 6.6 s).
- token_coefficient 0: corosync 3 would otherwise add 650 ms per node beyond
  two, which breaks consensus >= 1.2 x token in the 3-node lab (a 1650 ms token
  needs 1980 ms consensus) and slows failover; small LAN rings need no extra time.
- join, max_messages and token_retransmits_before_loss_const stay as in seed, so
  the profiles differ only in their timeouts and failover charts compare one
  variable. With 10 retransmits the token is resent about every 98 ms, riding
  out a lost packet well inside the 1 s window.
- resources: Apache is checked every second (a crash costs at most 1 s to
  notice plus a restart); the gateway every 2 s with a 1 s dampen, two 1 s
  pings; the VIP every 5 s (IPaddr2 rarely fails on its own; a node failure
  is caught by corosync, not by this monitor).
- dc_deadtime 5 s (pacemaker's default: 20 s; ``seed`` keeps it). A controller that
  starts waits this long to hear from a DC before it calls an election; on a
  cold start of the whole cluster there is no DC to hear from, so every node
  sits in S_PENDING for the full wait (about 21 s of a fresh build's stage 3 on
  the lab). Pacemaker documents the ideal value as depending on the speed and
  load of the network and nodes, and its own test suite (CTS) runs its clusters
  with 5 s. It stays above token + consensus (2.2 s), so a node starting during
  a membership change still hears the DC. The cost: pacemaker documents
  dc-deadtime as the grace period before startup fencing (a DC fences nodes it
  has never seen), so a node whose pacemaker starts more than about 5 s after
  the others' may be fenced where the cluster may act without quorum
  (``no-quorum-policy: ignore``) and fencing is on.
"""

LAN = Profile(
    name="lan",
    summary="below fast, for a quiet LAN: token 600 ms, consensus 720 ms, the gateway pinged every second",
    token=600,
    token_coefficient=0,
    consensus=720,
    join=60,
    max_messages=20,
    token_retransmits_before_loss_const=10,
    resources=ResourceTimings(
        vip_monitor=5, httpd_monitor=1, ping_monitor=1, ping_dampen=1, ping_attempts=1, ping_timeout=1
    ),
    dc_deadtime=5,
)
"""Why these ``lan`` values: a rung below ``fast`` for the failover ladder, kept only because a soak
under client load stayed quiet with it (README, "A LAN profile").

- token 600 ms is the lowest round value at which corosync's derived hold time (token / 10.2 x 0.8
  - 10 ms = 37 ms) stays above its 30 ms minimum with the same 10 retransmits as the other profiles;
  500 ms would give 29 ms. consensus 720 ms is the 1.2 x token minimum, so a new membership stands
  about 1.32 s after a node dies (fast: 2.2 s).
- the gateway is pinged once a second, one ping with a 1 s timeout, dampened 1 s (fast: every 2 s,
  two pings): a lost gateway is seen within about 2-3 s, and one lost ping is enough to count.
- Apache and the VIP as in fast (1 s and 5 s); dc_deadtime 5 s, above token + consensus.
"""

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (SEED, FAST, LAN)})


def profile_names() -> list[str]:
    """Valid profile names, sorted, for messages and notebook widgets."""
    return sorted(PROFILES)


def get_profile(name: str) -> Profile:
    """Look up a profile by name; unknown names raise ProfileError listing valid ones."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ProfileError(
            f"unknown corosync timing profile {name!r}; valid profiles: "
            f"{', '.join(profile_names())} (set cluster.profile in the params)"
        ) from None
