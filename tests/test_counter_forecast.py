"""Time to full, computed by the counter from the last 10 minutes' net inflow (synthetic
series), and published with the occupancy so every client shows the same figure."""

from __future__ import annotations

from datetime import datetime, timedelta

from sesame.common import wire
from sesame.common.venue import load_venue
from sesame.counter.core import Core
from sesame.counter.forecast import Trend, lane_rate, minutes_to_full
from sesame.counter.store import CounterStore
from tests.fixtures.dashboard import VENUE_FILE


def event(venue, gate: str, seq: int, ts: datetime) -> tuple[str, bytes]:
    lane = venue.gates[gate]
    ev = wire.Event(gate=gate, epoch="f1", seq=seq, ts=ts, kind="passage", from_zone=lane.from_zone,
                    to_zone=lane.to_zone, badge=f"B{seq}", category="public")  # fmt: skip
    return wire.Topics(venue.id).events(gate), ev.to_json()


def series(start_n: int, per_min: float, minutes: int, t0: float = 1000.0):
    return [(t0 + 60.0 * m, round(start_n + per_min * m)) for m in range(minutes + 1)]


def test_a_zone_filling_steadily_gets_its_minutes_to_full():
    # 10 people a minute for 10 minutes, 900 / 1000 now: 100 left at 10/min
    assert minutes_to_full(series(800, 10, 10), 1000, "near_full") == 10
    # rounded up: 105 left at 10/min is 11 minutes, never an optimistic 10
    assert minutes_to_full(series(795, 10, 10), 1000, "near_full") == 11


def test_only_the_last_ten_minutes_count():
    # a rush an hour ago, flat for the last 10 minutes: no trend, no estimate
    rush = series(0, 50, 30)
    flat = [(rush[-1][0] + 60.0 * m, rush[-1][1]) for m in range(1, 12)]
    assert minutes_to_full(rush + flat, 11000, "open") is None
    # the window starts between two samples: the figure at its start is the earlier sample's
    pts = [(0.0, 100), (300.0, 100), (900.0, 400)]  # window 300..900: +300 in 10 min
    assert minutes_to_full(pts, 1000, "open") == 20


def test_no_estimate_when_not_filling_or_too_far_or_too_little_history():
    assert minutes_to_full(series(500, -5, 10), 1000, "open") is None  # emptying
    assert minutes_to_full(series(500, 0, 10), 1000, "open") is None  # flat
    assert minutes_to_full(series(100, 5, 10), 1000, "open") is None  # 170 min: over an hour
    assert minutes_to_full(series(100, 14, 10), 1000, "open") == 55  # 760 left at 14/min
    assert minutes_to_full(series(100, 13, 10), 1000, "open") is None  # 770 at 13: 60 min
    assert minutes_to_full(series(100, 10, 1), 1000, "open") is None  # one minute of history
    assert minutes_to_full([(0.0, 5)], 1000, "open") is None


def test_never_for_a_closed_evacuating_or_full_zone():
    pts = series(800, 10, 10)
    assert minutes_to_full(pts, 1000, "near_full") == 10
    for state in ("closed", "evacuating", "full"):
        assert minutes_to_full(pts, 1000, state) is None
    assert minutes_to_full(series(990, 10, 10), 1000, "near_full") is None  # over capacity


def test_trend_keeps_the_window_and_its_base_sample():
    tr = Trend()
    for t, n in series(0, 10, 60):
        tr.record("nef", t, n)
    d = tr.samples["nef"]
    assert d[-1][0] - d[0][0] == 600.0 and len(d) == 11  # the base sample and 10 minutes
    tr.record("nef", d[-1][0] - 30, 700)  # a late figure counts as now, time never runs back
    assert d[-1] == (d[-2][0] + 60.0, 700) or d[-1][0] >= d[-2][0]


def test_lane_rate_is_per_minute_over_its_window():
    assert lane_rate([1.0, 2.0, 30.0, 59.0, 60.0], 60.0, 60.0) == 5
    assert lane_rate([1.0, 2.0, 30.0, 31.0], 90.0, 60.0) == 1


def test_the_counter_publishes_full_in_and_entry_rates_with_the_occupancy(tmp_path):
    """The salon (capacity 1000) gets 60 people a minute for 10 minutes through its one entry
    lane: the occupancy message carries the estimate and the lane's rate."""
    venue = load_venue(VENUE_FILE)
    t0 = datetime.fromisoformat("2018-11-25T11:00:00+01:00")
    now = [t0]  # the counter's clock: the replayed Sunday's
    core = Core(venue, CounterStore(tmp_path / "c.db"), lambda: now[0])
    core.startup()
    seq = 0
    last: wire.Occupancy | None = None
    # into the Nef, then the salon: 600 people over 10 minutes, a batch of 10 every 10 s
    for b in range(60):
        batch = []
        for i in range(b * 10, b * 10 + 10):
            ts = t0 + timedelta(seconds=i)
            seq += 1
            batch += [event(venue, "churchill-in-1", seq, ts), event(venue, "salon-in-1", seq, ts)]
        now[0] = ts
        outs = core.handle(batch)
        for o in outs:
            if o.topic.endswith("zones/salon-honneur/occupancy"):
                last = wire.parse_occupancy(o.payload)
    assert last and last.occupancy == 600 and last.state == "open"
    # 60 a minute, 400 left: about 7 minutes
    assert last.full_in_min == 7
    assert last.entry_rates == {"salon-in-1": 60}
    nef = wire.parse_occupancy(core._occupancy("nef").payload)
    assert nef.entry_rates["churchill-in-1"] == 60 and nef.entry_rates["churchill-in-2"] == 0
    assert nef.full_in_min is None  # nef: net 0 (everyone went on into the salon)
    # closing the salon removes the estimate at once
    core.handle([(wire.Topics(venue.id).zone_control("salon-honneur"),
                  wire.ZoneControl("closed", by="sophie").to_json())])  # fmt: skip
    closed = wire.parse_occupancy(core._occupancy("salon-honneur").payload)
    assert closed.state == "closed" and closed.full_in_min is None
    core.store.close()


def test_old_occupancy_messages_still_parse_and_bad_fields_are_refused():
    base = (
        b'{"v":1,"zone":"nef","occupancy":5,"capacity":10,"state":"open",'
        b'"ts":"2018-11-25T11:00:00+01:00"'
    )
    ok = wire.parse_occupancy(base + b"}")
    assert ok and ok.full_in_min is None and ok.entry_rates is None
    for bad in (b',"full_in_min":-1}', b',"full_in_min":"soon"}', b',"entry_rates":[1]}',
                b',"entry_rates":{"NOT AN ID":1}}', b',"entry_rates":{"a":-3}}',
                b',"entry_rates":{"a":true}}'):  # fmt: skip
        assert not wire.parse_occupancy(base + bad), bad
