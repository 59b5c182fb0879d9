"""The typed exception tree of the desk.

Every error a user can cause is an :class:`InvalidInput` (CLI exit code 2) and carries a message
that names what was wrong. Decisions (a risk denial, a refused gate) are *not* exceptions: they are
verdict records written to the ledger. :class:`Refused` exists only for the edges (CLI / API) to
turn a recorded refusal into exit code 3. :class:`TemporaryError` is the retryable branch: retry
loops key on it and on nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ExecdeskError(Exception):
    """Base of every error raised on purpose by execdesk (CLI exit code 1 unless a subclass says)."""

    exit_code = 1


class InvalidInput(ExecdeskError):
    """The input (a file, a config value, an argument) is wrong; the message says what and where."""

    exit_code = 2


class Refused(ExecdeskError):
    """A gate or the risk manager refused; the decision itself is already in the ledger."""

    exit_code = 3


class TemporaryError(ExecdeskError):
    """A failure worth retrying (timeouts, rate limits, a venue briefly away)."""


class LedgerError(ExecdeskError):
    """The ledger cannot be opened or written, or its content contradicts itself."""


class LedgerTampered(InvalidInput):
    """The ledger does not verify: an event's hash does not follow from its content and the one before it, an
    event is missing, or its schema is a revision this execdesk does not know. Nothing trades on it (exit 2)."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq  # the first event that does not verify (None: the schema's revision is unknown)


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem found in a structured input: where, what was there, what was expected."""

    path: str
    value: str
    expected: str

    def __str__(self) -> str:
        return f"{self.path}: got {self.value}; expected {self.expected}"


class SpecError(InvalidInput):
    """A structured input (strategy bundle, desk config) failed validation.

    ``source`` names the file (or other origin); ``issues`` lists every problem found, each with the
    field path, the offending value and what was expected.
    """

    def __init__(self, source: str, issues: Sequence[FieldIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        lines = "; ".join(str(i) for i in self.issues) or "invalid"
        super().__init__(f"{source}: {lines}")
