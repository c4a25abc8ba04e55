"""One authentication dependency for every service's HTTP API, and the scope checks its endpoints make.

`Authenticator` turns `Authorization: Bearer <credential>` into a `Principal`, or answers 401 (no, forged,
expired or revoked credential) with what to do next. Endpoints then ask the principal for what they need
(`for_household`, `for_member`, `operator`) and get 403 with the credential that would work. Revocation:
each service stores the scheduler's `HouseholdCredentialsRevoked` and passes a lookup of `not_before`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from uuid import UUID

from attune_contracts.credentials import CredentialClaims, CredentialError, CredentialVerifier, Scope
from fastapi import Header, HTTPException

NotBefore = Callable[[UUID], Awaitable[datetime | None]]
_BEARER = {"WWW-Authenticate": "Bearer"}


def _forbidden(message: str) -> HTTPException:
    return HTTPException(403, message)


@dataclass(frozen=True)
class Principal:
    claims: CredentialClaims

    @property
    def scope(self) -> Scope:
        return self.claims.scope

    @property
    def member_id(self) -> UUID | None:
        return self.claims.member_id

    def describe(self) -> str:
        if self.scope is Scope.OPERATOR:
            return "an operator credential"
        if self.scope is Scope.MEMBER:
            return f"a member credential (member {self.claims.member_id} of household {self.claims.household_id})"
        return f"a household credential (household {self.claims.household_id})"

    def for_household(self, household_id: UUID) -> Principal:
        """A household or member credential of this household; 403 otherwise."""
        if self.scope is Scope.OPERATOR:
            raise _forbidden(f"this needs a household or member credential of household {household_id}; "
                             f"an operator credential reaches no household's data")
        if self.claims.household_id != household_id:
            raise _forbidden(f"this needs a household or member credential of household {household_id}; "
                             f"you sent {self.describe()}")
        return self

    def household_itself(self, household_id: UUID, *, hint: str = "") -> Principal:
        """The household credential of this household only (an export of every member's data); 403 otherwise.
        `hint` is added to the 403 (where the caller may look instead)."""
        self.for_household(household_id)
        if self.scope is not Scope.HOUSEHOLD:
            raise _forbidden(f"the household export needs the household credential of {household_id}; "
                             f"you sent {self.describe()}{hint}")
        return self

    def acting_as(self, member_id: UUID) -> None:
        """A member credential acts as its own member only (a household credential acts for any of its members)."""
        if self.scope is Scope.MEMBER and self.claims.member_id != member_id:
            raise _forbidden(f"a member credential acts as its own member only: this needs the credential of "
                             f"member {member_id} or of its household; you sent {self.describe()}")

    def for_member(self, member_id: UUID, member_household_id: UUID) -> Principal:
        """That member's own credential, or its household's (the member's household, looked up by the caller)."""
        self.for_household(member_household_id)
        self.acting_as(member_id)
        return self

    def may_read_private(self, author_id: UUID) -> bool:
        """Private notes are for their author alone: a member credential of that member, nobody else."""
        return self.scope is Scope.MEMBER and self.claims.member_id == author_id

    def operator(self) -> Principal:
        if self.scope is not Scope.OPERATOR:
            raise _forbidden(f"this needs an operator credential; you sent {self.describe()}")
        return self


class Authenticator:
    """The FastAPI dependency (`Depends(authenticator)`): who is calling, or 401."""

    def __init__(self, verifier: CredentialVerifier, not_before: NotBefore, now: Callable[[], datetime]) -> None:
        self.verifier, self.not_before, self.now = verifier, not_before, now

    async def __call__(self, authorization: Annotated[str | None, Header()] = None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing 'Authorization: Bearer <credential>' header: send a household, member "
                                     "or operator credential (`attune credentials issue ...` makes one)",
                                headers=_BEARER)
        try:
            claims = self.verifier.verify(authorization[7:].strip(), now=self.now())
        except CredentialError as exc:
            raise HTTPException(401, str(exc), headers=_BEARER) from None
        if claims.household_id is not None:
            cutoff = await self.not_before(claims.household_id)
            if cutoff is not None and claims.issued_at < cutoff:
                raise HTTPException(401, "this credential was revoked (the household's credentials were revoked "
                                         f"at {cutoff.isoformat()}); ask for a new one", headers=_BEARER)
        return Principal(claims)
