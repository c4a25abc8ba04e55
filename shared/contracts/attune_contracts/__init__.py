"""Attune's contracts: the envelope, every message, the topic catalog and a typed publisher.

    from attune_contracts import make_envelope, parse
    from attune_contracts.messages import SubmitCheckIn
"""

__version__ = "2.0.0"

from . import messages  # noqa: F401  (registers every message)
from .envelope import Envelope, make_envelope
from .registry import ContractError, MessageSpec, all_specs, lookup, parse, spec_of
from .topics import CATALOG, Topic, TopicSpec

__all__ = [
    "CATALOG", "ContractError", "Envelope", "MessageSpec", "Topic", "TopicSpec",
    "all_specs", "lookup", "make_envelope", "parse", "spec_of",
]

from .publisher import AttunePublisher, Publisher, headers_for

__all__ += ["AttunePublisher", "Publisher", "headers_for"]
