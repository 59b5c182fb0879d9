"""The application layer: :mod:`execdesk.api.actions` holds one function per user action, called by the CLI (and
by the REST API and the agent tools). The edges import this package only; what they need of the rest (the
version, the error types that carry the exit codes) is exported here."""

from execdesk import __version__
from execdesk.errors import ExecdeskError

__all__ = ["ExecdeskError", "__version__"]
