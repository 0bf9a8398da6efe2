"""How runs spread over workers: benchmarks/scheduling.py's makespans, on the order the runner's
workers take runs (claiming.claim_order), with the cost model's estimates."""

from __future__ import annotations

import pytest

from benchmarks import scheduling


def test_claiming_gives_each_run_to_the_worker_free_first_and_fixed_shares_deal_every_nth():
    seconds = [9.0, 5.0, 4.0, 3.0, 3.0, 2.0]  # in claim order, most expensive first
    # Fixed shares of two: runs 0, 2, 4 (16 s) and 1, 3, 5 (10 s).
    assert scheduling.fixed_shares_makespan(seconds, 2) == 16.0
    # Claiming: 9 | 5, then 4 to the second (free at 5: ends 9), 3 and 3 to each (12, 12), 2 (14).
    assert scheduling.claiming_makespan(seconds, 2) == 14.0
    assert scheduling.claiming_makespan(seconds, 6) == 9.0 == max(seconds)


@pytest.mark.slow
def test_the_widening_study_over_eight_workers_ends_within_5_percent_of_the_ideal_when_workers_claim():
    rows = {row["workers"]: row for row in scheduling.table(scheduling.study_seconds("widening"), [2, 8, 16])}
    assert rows[8]["claiming"] <= 1.05
    assert all(row["claiming"] <= row["fixed_shares"] for row in rows.values())
    assert rows[16]["fixed_shares"] > 1.2  # what fixed shares cost where runs differ 77x
