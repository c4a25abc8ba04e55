"""The chaos suite: reminders and check-ins through kill -9s, broker cuts and a PostgreSQL restart.

`make test` (plain pytest, CI) runs the bounded profile: 200 members due in one minute, about a minute of
faults. `make chaos` runs the long one (ATTUNE_CHAOS=long): three waves, 20+ kills. ATTUNE_CHAOS_SEED
replays another schedule of faults. The figures are printed at the end of pytest's output; the timeline
of faults and every instance's log stay in the test's temporary directory.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from .cluster import Cluster
from .postgres import PostgresUnavailable, PrivatePostgres
from .scenario import BOUNDED, LONG, ChaosRun, Profile, render

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def chosen_profile() -> Profile:
    profile = LONG if os.environ.get("ATTUNE_CHAOS", "").lower() == "long" else BOUNDED
    if os.environ.get("ATTUNE_CHAOS_SEED"):
        profile = dataclasses.replace(profile, seed=int(os.environ["ATTUNE_CHAOS_SEED"]))
    return profile


PROFILE = chosen_profile()


@pytest.mark.timeout(900 if PROFILE is BOUNDED else 2400)
async def test_each_reminder_arrives_once_and_each_checkin_is_kept_under_fire(
        tmp_path: Path, chaos_report: list[str]) -> None:
    try:
        postgres = PrivatePostgres()
    except PostgresUnavailable as exc:
        pytest.skip(f"the chaos suite needs a private PostgreSQL cluster it may restart: {exc}")
    cluster = Cluster(tmp_path, seed=PROFILE.seed, postgres=postgres)
    run: ChaosRun | None = None
    try:
        await cluster.start()
        run = ChaosRun(cluster, PROFILE, tmp_path)
        await run.set_up()
        await run.run()
        figures = await run.figures()
    except BaseException:
        for instance in cluster.instances.values():
            print(f"--- {instance.name}\n{instance.tail()}")
        raise
    finally:
        if run is not None:
            await run.close()
        await cluster.stop()
    report = render(figures) + f"\n  timeline and logs: {tmp_path}"
    print(report)
    chaos_report.append(report)

    # Every instance came back by itself after every fault (none stuck up-but-never-ready).
    assert not figures["stuck_instances"] and not figures["never_ready_again"], report
    # The faults really happened.
    assert figures["kills"] >= PROFILE.min_kills and figures["cuts"] >= 1 and figures["postgres_restarts"] == 1, report
    # Each (member, occurrence) reached the gateway, once: the only second copies allowed are re-sends of a
    # send in flight when its notifier was kill -9'd (the one-send window), and nothing else.
    assert figures["lost"] == 0, report
    assert figures["duplicated"] == figures["duplicated_in_a_kill_window"], report
    assert figures["unexpected_reminders"] == 0, report
    assert figures["unsettled_deliveries"] == 0, report
    # Every check-in submitted during the chaos was accepted, recorded once and announced once.
    assert figures["checkins_accepted"] == figures["checkins_submitted"] > 0, report
    assert figures["checkin_histories_unreadable"] == 0, report
    assert figures["checkins_not_recorded"] == 0 and figures["checkins_recorded_twice"] == 0, report
    assert figures["checkins_unknown_recorded"] == 0 and figures["checkins_announced_not_once"] == 0, report
    # The partner heard of each check-in once.
    assert figures["partner_news_lost"] == 0, report
    assert figures["partner_news_duplicated"] == figures["partner_news_duplicated_in_a_kill_window"], report
    assert figures["partner_news_unexpected"] == 0 and figures["other_messages"] == 0, report
    # Nothing valid was given up on.
    assert figures["dead_letters_valid"] == 0, report
