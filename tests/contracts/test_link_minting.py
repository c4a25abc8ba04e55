"""Links are minted without itsdangerous' per-call signer (issue 12: three links a push in the 19:00 burst), and
must stay exactly the tokens itsdangerous makes, so every service verifies them as before."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from attune_contracts.links import LinkAction, LinkClaims, LinkSigner, link_serializer

KEYS = {"k1": "a-link-key-of-thirty-two-chars!!", "k0": "an-older-key-0123"}


def test_minted_tokens_are_itsdangerous_tokens_byte_for_byte() -> None:
    rng = random.Random(12)
    signer = LinkSigner(KEYS, "k1")
    reference = link_serializer(KEYS["k1"])
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    for i in range(500):
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**8), microseconds=rng.randrange(2) * rng.randrange(10**6))
        claims = LinkClaims(token_id=UUID(int=rng.getrandbits(128)), household_id=UUID(int=rng.getrandbits(128)),
                            occurrence_id=UUID(int=rng.getrandbits(128)), member_id=UUID(int=rng.getrandbits(128)),
                            action=list(LinkAction)[i % len(LinkAction)], expires_at=at.astimezone(zones[i % 3]),
                            locale=(None, "de", "en")[i % 3])
        # an unknown locale is left out of the token, as the notifier's links have carried it since 1.2.0
        assert signer._encode(claims) == reference.dumps(claims.model_dump(mode="json", exclude_none=True))


def test_minted_tokens_verify() -> None:
    signer = LinkSigner(KEYS, "k1")
    now = datetime(2026, 12, 1, 19, tzinfo=UTC)
    ids = {"household_id": UUID(int=1), "occurrence_id": UUID(int=2), "member_id": UUID(int=3)}
    token = signer.mint(**ids, action=LinkAction.SNOOZE, ttl=timedelta(hours=1), now=now)
    claims = signer.verify(token, now=now)
    assert (claims.household_id, claims.occurrence_id, claims.member_id) == tuple(ids.values())
    assert claims.action is LinkAction.SNOOZE and claims.expires_at == now + timedelta(hours=1)
