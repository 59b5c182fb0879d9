"""The redesign's oracle: the demo (seeds 1-5) and every desk config the test suite runs give the same event
stream, byte for byte (paths aside), as before the loop became an engine (``tests/oracle/digests.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.oracle.cases import DIGESTS, case_names, run_case

RECORDED = json.loads(DIGESTS.read_text())


def test_oracle_when_listed_then_every_case_has_a_recorded_digest() -> None:
    assert sorted(RECORDED) == sorted(case_names())


@pytest.mark.slow
@pytest.mark.parametrize("name", case_names())
def test_oracle_when_case_runs_then_its_stream_equals_the_recorded_one(name: str, tmp_path: Path) -> None:
    digest = run_case(name, tmp_path)
    digest.pop("chain_head", None)
    assert digest == RECORDED[name]
