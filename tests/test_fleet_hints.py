"""``make fleet``'s verdict on the day with hints: what reached the server decides it.

The fleet itself is figures, never a test; these cases keep its report honest about the
client that ran (one that honours max-age, one that sends every check anyway, a filter
whose hint was off) from the counts alone.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench import fleet

pytestmark = pytest.mark.in_process

SCHEDULE = fleet.Schedule(on_boot=60, interval=3600, randomized_delay=600, accuracy=60)
# The filter's day without the hint, per device: 24 checks, 43 kB down, 107 kB up.
WITHOUT = {"requests": 24.0, "down": 43_000.0, "up": 107_000.0, "cpu": 0.2}
VERDICT_WORDS = ("honoured", "sent every check anyway", "NO answer")  # one per verdict


def day(requests: int, hinted: int, devices: int = 10) -> fleet.HintDay:
    return fleet.HintDay(
        devices=devices,
        ticks=24,
        tick_seconds=4.0,
        day_seconds=101,
        late_ticks=0,
        exits=Counter({0: devices * 24}),
        requests=requests,
        answers=Counter({200: devices, 304: requests - devices}),
        hinted=hinted,
        first_max_age=96,
        wire_down=requests * 1_800,
        wire_up=requests * 4_400,
        http_down=0,
        http_up=0,
        server_cpu={"caramel": 0.5, "nginx": 0.1},
    )


@pytest.mark.parametrize(
    ("requests", "hinted", "verdict"),
    [
        (10, 10, "the client honoured the hint: 1.0 of the 24 checks per device-day"),
        (240, 240, "the client that ran sent every check anyway (24.0 of 24"),
        (240, 0, "NO answer carried max-age"),
    ],
)
def test_the_verdict_follows_what_reached_the_server(
    capsys: pytest.CaptureFixture[str], requests: int, hinted: int, verdict: str
) -> None:
    fleet.report_hints(day(requests, hinted), WITHOUT, 10, SCHEDULE)
    out = capsys.readouterr().out
    assert verdict in out
    others = [word for word in VERDICT_WORDS if word not in verdict]
    assert not any(other in out for other in others), out


def test_the_honoured_day_costs_its_share_of_the_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    fleet.report_hints(day(10, 10), WITHOUT, 10, SCHEDULE)
    out = capsys.readouterr().out
    # 1 check of 6.2 kB against 150 kB: 4 %.
    assert "| checks reaching the server " in out
    assert "1.8 kB + 4.4 kB (4 %)" in out
