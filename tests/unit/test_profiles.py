"""Timing profiles: the article's seed values, the fast profile and corosync's rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hakit.params import ParamsError
from hakit.profiles import FAST, PROFILES, SEED, Profile, ProfileError, get_profile, profile_names

BASE = dict(
    name="custom",
    summary="test",
    token=1000,
    token_coefficient=0,
    consensus=1200,
    join=60,
    max_messages=20,
    token_retransmits_before_loss_const=10,
    resources=FAST.resources,
)


def make(**changes: object) -> Profile:
    return Profile(**{**BASE, **changes})


def test_seed_is_the_article() -> None:
    p = get_profile("seed")
    assert (p.token, p.consensus, p.join, p.max_messages, p.token_retransmits_before_loss_const) == (
        3000,
        3600,
        60,
        20,
        10,
    )


def test_fast_is_faster_and_sits_on_corosyncs_minimum() -> None:
    p = get_profile("fast")
    assert (p.token, p.consensus) == (1000, 1200)
    assert p.consensus == 1.2 * p.token
    assert p.failure_detection_ms(2) == 2200
    assert SEED.failure_detection_ms(2) == 6600


def test_registry() -> None:
    assert profile_names() == ["fast", "lan", "seed"]
    assert PROFILES["fast"] is FAST and get_profile("seed") is SEED


def test_lan_is_below_fast_and_as_low_as_corosync_allows_with_ten_retransmits() -> None:
    lan = get_profile("lan")
    assert (lan.token, lan.consensus) == (600, 720) and lan.failure_detection_ms(2) == 1320
    assert lan.failure_detection_ms(2) < FAST.failure_detection_ms(2)
    assert lan.token_retransmits_before_loss_const == FAST.token_retransmits_before_loss_const == 10
    with pytest.raises(ValidationError, match="hold time of 29 ms"):  # 500 ms would be below the minimum
        lan.model_validate({**lan.model_dump(), "token": 500, "consensus": 600})


def test_unknown_profile_names_the_valid_ones() -> None:
    with pytest.raises(ProfileError) as err:
        get_profile("fats")
    msg = str(err.value)
    assert "'fats'" in msg and "fast, lan, seed" in msg and "cluster.profile" in msg
    assert isinstance(err.value, ParamsError)


@pytest.mark.parametrize("nodes", [2, 3, 5, 16])
def test_builtin_profiles_fit_any_size(nodes: int) -> None:
    for p in PROFILES.values():
        p.check_cluster_size(nodes)
        assert p.effective_token(nodes) == p.token


def test_consensus_below_rule_is_rejected_with_the_minimum() -> None:
    with pytest.raises(ValidationError) as err:
        make(token=2000, consensus=2000)
    msg = str(err.value)
    assert "consensus 2000 ms" in msg and ">= 2400 ms" in msg


def test_consensus_exactly_at_rule_is_accepted_for_odd_tokens() -> None:
    assert make(token=1234, consensus=1481).consensus == 1481  # ceil(1.2 * 1234)
    with pytest.raises(ValidationError):
        make(token=1234, consensus=1480)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"token": 0}, "token"),
        ({"token": 20, "consensus": 40}, "token 20 ms is below corosync's minimum"),
        ({"join": 2000, "consensus": 1500}, "below join 2000 ms"),
        ({"token_retransmits_before_loss_const": 30}, "hold time"),
        ({"max_messages": 0}, "max_messages"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_profiles_name_the_field(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        make(**changes)
    assert needle in str(err.value)


def test_token_coefficient_scales_and_can_break_consensus() -> None:
    p = make(token_coefficient=650)
    assert p.effective_token(2) == 1000
    assert p.effective_token(4) == 2300
    p.check_cluster_size(2)
    with pytest.raises(ProfileError) as err:
        p.check_cluster_size(3)
    msg = str(err.value)
    assert "1650 ms" in msg and ">= 1980 ms" in msg and "1200 ms" in msg


def test_profiles_are_frozen() -> None:
    with pytest.raises(ValidationError):
        FAST.token = 5  # type: ignore[misc]


def test_resource_timings_fast_is_quicker_than_seed() -> None:
    f, s = FAST.resources, SEED.resources
    assert f.httpd_monitor < s.httpd_monitor and f.ping_monitor < s.ping_monitor
    assert f.ping_monitor + f.ping_dampen <= 5  # the gateway-loss goal is 5 s


def test_ping_that_cannot_fit_its_operation_timeout_is_rejected() -> None:
    with pytest.raises(ValidationError) as err:
        make(resources={**FAST.resources.model_dump(), "ping_attempts": 10, "ping_timeout": 6})
    assert "ping_attempts 10 x ping_timeout 6 s = 60 s" in str(err.value)


def test_dc_deadtime_fast_shortens_it_and_seed_keeps_pacemakers_default() -> None:
    assert (FAST.dc_deadtime, FAST.dc_deadtime_value) == (5, "5s")
    assert (SEED.dc_deadtime, SEED.dc_deadtime_value) == (None, None)
    assert FAST.dc_deadtime * 1000 > FAST.failure_detection_ms(2)
    assert make(dc_deadtime=3).dc_deadtime_value == "3s"  # 3 s > token 1 s + consensus 1.2 s


@pytest.mark.parametrize(("value", "needle"), [
    (2, "dc_deadtime 2 s is not above token + consensus (2200 ms with 2 nodes)"),
    (0, "dc_deadtime"), (3601, "dc_deadtime"), ("5s", "dc_deadtime")])
def test_a_dc_deadtime_too_short_for_the_membership_is_rejected(value: object, needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        make(dc_deadtime=value)
    assert needle in str(err.value)
    if value == 2:
        assert "use at least 3 s, or null for pacemaker's default (20 s)" in str(err.value)


def test_dc_deadtime_is_checked_for_the_cluster_size_too() -> None:
    p = make(token_coefficient=650, consensus=3000, dc_deadtime=5)
    p.check_cluster_size(3)  # 1650 + 3000 ms
    with pytest.raises(ProfileError) as err:
        p.check_cluster_size(4)  # 2300 + 3000 ms
    assert "profile 'custom': dc_deadtime 5 s is not above token + consensus (5300 ms with 4 nodes)" in str(err.value)
