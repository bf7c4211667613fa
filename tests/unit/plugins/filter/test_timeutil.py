"""The is_past and seconds_until filters: ISO 8601 instants with an offset, compared in UTC."""

from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sne.guichet.plugins.filter.timeutil import FilterModule, is_past, seconds_until

REVOCATION = "2026-12-01T09:00:00Z"


@pytest.mark.parametrize("now, expected", [
    ("2026-12-01T08:59:59Z", 1.0),
    ("2026-12-01T09:00:00Z", 0.0),
    ("2026-12-01T09:30:00Z", -1800.0),
    # Paris time in winter is UTC+1: 09:30 there is 08:30 UTC, half an hour before.
    ("2026-12-01T09:30:00+01:00", 1800.0),
    ("2026-12-01T09:30:00+0100", 1800.0),
    ("2026-12-01T09:30:00+01", 1800.0),
    ("2026-12-01T10:00:00+01:00", 0.0),
    ("2026-12-01T04:00:00-05:00", 0.0),
    ("2026-12-01 09:00:00.250000z", -0.25),
    ("2026-12-01T09:00Z", 0.0),
])
def test_seconds_until_across_offsets(now, expected):
    assert seconds_until(REVOCATION, now=now) == pytest.approx(expected)
    assert is_past(REVOCATION, now=now) is (expected <= 0)


def test_the_instant_itself_may_carry_an_offset():
    assert seconds_until("2026-12-01T10:00:00+01:00", now="2026-12-01T09:00:00Z") == 0.0
    assert is_past("2016-01-07T09:00:00+01:00", now="2016-01-07T08:30:00Z") is True


def test_default_now_is_the_controllers_clock_in_utc():
    now = datetime.datetime.now(datetime.timezone.utc)
    hour_ago = (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    in_an_hour = (now + datetime.timedelta(hours=1)).astimezone(
        datetime.timezone(datetime.timedelta(hours=1))).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    assert is_past(hour_ago) is True
    assert is_past(in_an_hour) is False
    assert 3500 < seconds_until(in_an_hour) <= 3600
    assert -3700 < seconds_until(hour_ago) < -3500


def test_aware_datetimes_as_an_unquoted_yaml_timestamp_gives_them():
    revocation = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)
    assert seconds_until(revocation, now="2026-12-01T08:00:00Z") == 3600.0
    assert is_past(revocation, now=revocation) is True


@pytest.mark.parametrize("value", [
    "2026-12-01T09:00:00",          # no offset: Paris time or UTC?
    "2026-12-01",
    "09:00",
    "tomorrow 9am",
    "2026-13-01T09:00:00Z",         # no 13th month
    "2026-12-01T25:00:00Z",
    "2026-12-01T09:00:00+25:00",
    "",
])
def test_refused_instants(value):
    with pytest.raises(AnsibleFilterError):
        is_past(value)


def test_refused_types_and_naive_datetimes():
    with pytest.raises(AnsibleFilterError, match="offset"):
        is_past(datetime.datetime(2026, 12, 1, 9, 0))
    with pytest.raises(AnsibleFilterError):
        seconds_until(1764579600)
    with pytest.raises(AnsibleFilterError):
        is_past(REVOCATION, now="now")


def test_registration():
    filters = FilterModule().filters()
    assert filters["is_past"] is is_past
    assert filters["seconds_until"] is seconds_until
