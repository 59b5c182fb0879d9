"""What a role may read of the ledger: the fold of its events (:class:`~execdesk.domain.state.DeskState`) and
the events themselves. :class:`~execdesk.store.ledger.Ledger` is one; a role that takes a ``LedgerReader``
cannot write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState


class LedgerReader(Protocol):
    @property
    def state(self) -> DeskState: ...

    def events(self, kinds: set[EventKind] | None = None, deployment_id: str | None = None,
               batch: int = 5000) -> Iterator[Event]: ...
