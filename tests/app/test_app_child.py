"""A child's version of /today: a child's words for the check-in, and none of the grown-ups' 5:1 ratio (no moment
form, and a posted moment is refused). The other pages' child rules are in test_app_progress, test_app_dreams and
test_app_aftercare."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from attune_contracts.messages import RitualDue

from .conftest import Harness
from .families import family_with_a_child
from .test_app_http import fact

pytestmark = [pytest.mark.unit]


async def test_a_child_checks_in_in_a_childs_words_and_logs_no_moments(harness: Harness) -> None:
    home = await family_with_a_child(harness)
    household_id, parent_id, zoe_id, parent, zoe = (home.household_id, home.parent_id, home.child_id, home.parent,
                                                    home.child)
    now = harness.clock.now()
    await fact(harness, RitualDue(
        occurrence_id=uuid4(), ritual_id=uuid4(), template="parent_child_attunement", title="Our talk",
        participants=[parent_id, zoe_id], scheduled_for=now, local_time=now.isoformat(), time_zone="Europe/Lisbon",
        sensitive=False, deadline=now + timedelta(hours=4)), household_id)
    child_today = (await zoe.get("/today")).text
    assert "Our talk" in child_today and "How did it feel? (1 not great, 5 great)" in child_today
    assert "How close did you feel?" not in child_today and "A hard moment" not in child_today
    assert 'action="/moments"' not in child_today
    posts = len(harness.checkins.posts)
    assert (await zoe.submit("/today", "/moments", {"kind": "positive"})).status_code == 404
    assert len(harness.checkins.posts) == posts
    parent_today = (await parent.get("/today")).text
    assert "How close did you feel?" in parent_today and 'action="/moments"' in parent_today
    assert (await parent.submit("/today", "/moments", {"kind": "positive"})).status_code == 303
