"""The one-tap link tokens (attune_contracts.links): what the notifier mints, the check-ins service verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from attune_contracts.links import LinkAction, LinkError, LinkSigner

pytestmark = [pytest.mark.unit]

NOW = datetime(2027, 3, 2, 12, tzinfo=UTC)
KEYS = {"2027a": "first-secret-0123456789abcdef", "2027b": "second-secret-0123456789abcdef"}


def mint(signer: LinkSigner, **kw: object) -> str:
    args = {"household_id": uuid4(), "occurrence_id": uuid4(), "member_id": uuid4(), "action": LinkAction.DONE,
            "now": NOW}
    return signer.mint(**{**args, **kw})  # type: ignore[arg-type]


def reason(signer: LinkSigner, token: str, now: datetime = NOW) -> str:
    with pytest.raises(LinkError) as caught:
        signer.verify(token, now=now)
    assert str(caught.value)  # always a sentence for people
    return caught.value.reason


def test_round_trip_with_key_id_and_expiry() -> None:
    signer = LinkSigner(KEYS, "2027b")
    household, occurrence, member = uuid4(), uuid4(), uuid4()
    token = signer.mint(household_id=household, occurrence_id=occurrence, member_id=member,
                        action=LinkAction.SNOOZE, ttl=timedelta(hours=2), now=NOW)
    assert token.startswith("2027b.") and len(token) < 400
    claims = signer.verify(token, now=NOW + timedelta(hours=1, minutes=59))
    assert (claims.household_id, claims.occurrence_id, claims.member_id, claims.action) == (
        household, occurrence, member, LinkAction.SNOOZE)
    assert claims.expires_at == NOW + timedelta(hours=2)
    assert mint(signer) != mint(signer)  # every token has its own id (replays are refused by id)


def test_expired() -> None:
    signer = LinkSigner(KEYS, "2027a")
    token = mint(signer, ttl=timedelta(minutes=10))
    assert reason(signer, token, NOW + timedelta(minutes=10)) == "expired"


def test_tampered_claims_and_signature() -> None:
    from attune_contracts.links import link_serializer

    signer = LinkSigner(KEYS, "2027a")
    token = mint(signer)
    kid, _, body = token.partition(".")
    payload, _, signature = body.rpartition(".")
    ok, claims = link_serializer(KEYS["2027a"]).loads_unsafe(body)
    assert ok and claims["action"] == "done"
    claims["action"] = "skip"  # same claims, one field changed, original signature kept
    changed = link_serializer("x" * 20).dumps(claims).rpartition(".")[0]
    assert changed != payload
    assert reason(signer, f"{kid}.{changed}.{signature}") == "bad_signature"
    assert reason(signer, f"{kid}.{payload}.{signature[:-2]}xx") == "bad_signature"


def test_forged_and_malformed() -> None:
    signer = LinkSigner(KEYS, "2027a")
    assert reason(signer, "") == "malformed"
    assert reason(signer, "2027a") == "malformed"
    assert reason(signer, "2027a." + "a" * 3000) == "malformed"
    assert reason(signer, "2027a.eyJhIjoxfQ.bm90LWEtc2lnbmF0dXJl") == "bad_signature"
    # Correctly signed, but not link claims: still refused.
    from attune_contracts.links import link_serializer

    odd = link_serializer(KEYS["2027a"]).dumps({"hello": "world"})
    assert reason(signer, f"2027a.{odd}") == "malformed"
    # Signed with the right key but another purpose (salt): refused.
    other = link_serializer(KEYS["2027a"], salt="something-else").dumps({"hello": "world"})
    assert reason(signer, f"2027a.{other}") == "bad_signature"


def test_wrong_key() -> None:
    ours = LinkSigner(KEYS, "2027a")
    theirs_same_kid = LinkSigner({"2027a": "not-our-secret-0123456789"}, "2027a")
    theirs_unknown_kid = LinkSigner({"attacker": "not-our-secret-0123456789"}, "attacker")
    assert reason(ours, mint(theirs_same_kid)) == "bad_signature"
    assert reason(ours, mint(theirs_unknown_kid)) == "unknown_key"
    # A valid body under another configured kid does not verify either (each key signs only its own).
    token = mint(ours)
    assert reason(ours, "2027b." + token.partition(".")[2]) == "bad_signature"


def test_rotation_keeps_old_links_working_until_the_key_is_dropped() -> None:
    old = LinkSigner({"2027a": KEYS["2027a"]}, "2027a")
    token = mint(old)
    rotated = LinkSigner(KEYS, "2027b")
    assert rotated.verify(token, now=NOW).action is LinkAction.DONE
    assert mint(rotated).startswith("2027b.")
    dropped = LinkSigner({"2027b": KEYS["2027b"]}, "2027b")
    assert reason(dropped, token) == "unknown_key"


@pytest.mark.parametrize(
    ("keys", "current", "words"),
    [({"a": "x" * 20}, "b", "not among"), ({"bad kid!": "x" * 20}, "bad kid!", "letters, digits"),
     ({"a": "short"}, "a", "shorter than 16")],
)
def test_bad_key_configuration_is_refused(keys: dict[str, str], current: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        LinkSigner(keys, current)
