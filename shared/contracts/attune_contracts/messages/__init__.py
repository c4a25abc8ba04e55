"""Every command and event the services exchange. Commands are imperative, events past tense."""

from .checkins import *  # noqa: F403
from .deadletter import *  # noqa: F403
from .notifier import *  # noqa: F403
from .scheduler import *  # noqa: F403
