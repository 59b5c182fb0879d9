"""Steps of long work, heard by whoever listens (execdesk.phases)."""

from __future__ import annotations

from execdesk.phases import listening, phase


def test_phases_when_nobody_listens_then_nothing_happens() -> None:
    heard: list[str] = []
    phase("unheard")
    with listening(heard.append):
        phase("one")
        with listening(lambda _name: None):
            phase("elsewhere")
        phase("two")
    phase("after")
    assert heard == ["one", "two"]
