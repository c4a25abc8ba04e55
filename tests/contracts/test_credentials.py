"""The credential module: scoped Ed25519 tokens, verified by kid, expiring or not, development keys fenced off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from attune_contracts.credentials import (
    DEV_KID,
    MAX_TOKEN,
    CredentialError,
    CredentialIssuer,
    CredentialVerifier,
    Scope,
    development_issuer,
    development_public_keys,
    generate_key_pair,
    parse_public_keys,
    parse_signing_key,
    verifier_from_setting,
)

pytestmark = [pytest.mark.unit]

NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
K1_SIGN, K1_PUBLIC = generate_key_pair("k1")
K2_SIGN, K2_PUBLIC = generate_key_pair("k2")


def verifier(*public: str) -> CredentialVerifier:
    return verifier_from_setting(",".join(public), development=False, setting="KEYS")


def test_each_scope_round_trips_with_its_claims() -> None:
    issuer, household, member = CredentialIssuer(K1_SIGN), uuid4(), uuid4()
    v = verifier(K1_PUBLIC)
    h = v.verify(issuer.household(household, now=NOW), now=NOW)
    assert (h.scope, h.household_id, h.member_id, h.kid, h.expires_at) == (Scope.HOUSEHOLD, household, None, "k1", None)
    m = v.verify(issuer.member(household, member, now=NOW, ttl=timedelta(days=30)), now=NOW)
    assert (m.scope, m.household_id, m.member_id) == (Scope.MEMBER, household, member)
    assert m.expires_at == NOW + timedelta(days=30)
    o = v.verify(issuer.operator(now=NOW), now=NOW)
    assert (o.scope, o.household_id, o.member_id) == (Scope.OPERATOR, None, None)
    assert abs(h.issued_at - NOW) < timedelta(milliseconds=1) and h.issued_at <= NOW
    assert h.token_id != o.token_id


def test_keys_rotate_by_kid() -> None:
    household = uuid4()
    both = verifier(K1_PUBLIC, K2_PUBLIC)
    old, new = CredentialIssuer(K1_SIGN).household(household, now=NOW), CredentialIssuer(K2_SIGN).household(household, now=NOW)
    assert both.verify(old, now=NOW).kid == "k1" and both.verify(new, now=NOW).kid == "k2"
    with pytest.raises(CredentialError) as retired:
        verifier(K2_PUBLIC).verify(old, now=NOW)
    assert retired.value.reason == "unknown_key"


def test_a_key_of_the_same_kid_that_is_not_ours_does_not_verify() -> None:
    impostor, _ = generate_key_pair("k1")
    with pytest.raises(CredentialError) as refused:
        verifier(K1_PUBLIC).verify(CredentialIssuer(impostor).household(uuid4(), now=NOW), now=NOW)
    assert refused.value.reason == "bad_signature"


def test_expiry_and_issue_time_are_checked_against_the_given_clock() -> None:
    token = CredentialIssuer(K1_SIGN).household(uuid4(), now=NOW, ttl=timedelta(hours=1))
    v = verifier(K1_PUBLIC)
    v.verify(token, now=NOW + timedelta(minutes=59))
    with pytest.raises(CredentialError, match="expired") as expired:
        v.verify(token, now=NOW + timedelta(hours=1))
    assert expired.value.reason == "expired"
    with pytest.raises(CredentialError, match="future"):
        v.verify(token, now=NOW - timedelta(minutes=5))


@pytest.mark.parametrize("token", ["", "x" * (MAX_TOKEN + 1), "a.b.c", "hh1_abc", "e30.e30.", "..", "💥.💥.💥"])
def test_anything_else_is_a_malformed_credential(token: str) -> None:
    with pytest.raises(CredentialError) as refused:
        verifier(K1_PUBLIC).verify(token, now=NOW)
    assert refused.value.reason == "malformed"


def test_development_keys_are_refused_outside_development() -> None:
    dev_token = development_issuer().household(uuid4(), now=NOW)
    assert verifier_from_setting(None, development=True, setting="KEYS").verify(dev_token, now=NOW).kid == DEV_KID
    with pytest.raises(ValueError, match="KEYS must be set outside development"):
        verifier_from_setting(None, development=False, setting="KEYS")
    with pytest.raises(ValueError, match="development key"):
        verifier_from_setting(f"{K1_PUBLIC},{development_public_keys()}", development=False, setting="KEYS")
    renamed = "prod:" + development_public_keys().split(":", 1)[1]  # the same key under another kid
    with pytest.raises(ValueError, match="development key"):
        verifier_from_setting(renamed, development=False, setting="KEYS")
    with pytest.raises(CredentialError):
        verifier(K1_PUBLIC).verify(dev_token, now=NOW)


@pytest.mark.parametrize("setting", ["k1", "k1:", "k1:abc", "bad kid:" + "A" * 43, ":" + "A" * 43])
def test_bad_key_settings_say_what_is_wrong(setting: str) -> None:
    with pytest.raises(ValueError, match=r"kid|base64url|32 bytes"):
        parse_public_keys(setting)
    with pytest.raises(ValueError, match=r"kid|base64url|32 bytes"):
        parse_signing_key(setting)


def test_a_signing_key_setting_signs_what_its_public_setting_verifies_and_shape_rules_hold() -> None:
    kid, _ = parse_signing_key(K1_SIGN)
    assert kid == "k1" and set(parse_public_keys(K1_PUBLIC)) == {"k1"}
    issuer = CredentialIssuer(K1_SIGN)
    with pytest.raises(ValueError, match="names no household"):
        issuer.issue(Scope.OPERATOR, household_id=uuid4(), now=NOW)
    with pytest.raises(ValueError, match="names its member"):
        issuer.issue(Scope.MEMBER, household_id=uuid4(), now=NOW)
    with pytest.raises(ValueError, match="names its household"):
        issuer.issue(Scope.HOUSEHOLD, now=NOW)
