"""Tests of bundle folders (bundle.* or strategy.* + validation.*) and of intake over an inbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from execdesk.errors import FieldIssue, SpecError
from execdesk.strategy import intake, load_bundle, validate_bundle

from .conftest import EXAMPLE_FILES, EXAMPLES, VALID

WriteYaml = Callable[..., Path]


def load_issues(path: Path) -> list[FieldIssue]:
    with pytest.raises(SpecError) as info:
        load_bundle(path)
    return info.value.issues


def issue_at(issues: list[FieldIssue], path: str) -> FieldIssue:
    found = [i for i in issues if i.path == path]
    assert found, f"no issue at {path!r} in {issues}"
    return found[0]


def test_load_bundle_when_folder_with_bundle_file_then_loads(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    write_yaml(valid, "one/bundle.yml")
    assert load_bundle(tmp_path / "one").id == "STR-900"


def test_load_bundle_when_split_strategy_and_validation_then_merged(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    report = valid.pop("validation")
    write_yaml(valid, "split/strategy.yaml")
    (tmp_path / "split" / "validation.json").write_text(json.dumps(report))
    bundle = load_bundle(tmp_path / "split")
    assert bundle.validation.trades == 87
    assert bundle.bundle_hash == validate_bundle(VALID).bundle_hash


def test_load_bundle_when_split_without_validation_then_missing_issue(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    del valid["validation"]
    write_yaml(valid, "split/strategy.yaml")
    assert issue_at(load_issues(tmp_path / "split"), "validation").value == "(missing)"


def test_load_bundle_when_validation_given_twice_then_issue(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    write_yaml(valid, "twice/strategy.yaml")
    write_yaml(valid["validation"], "twice/validation.yaml")
    assert issue_at(load_issues(tmp_path / "twice"), "validation").value == "given twice"


def test_load_bundle_when_folder_without_bundle_then_file_issue(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert load_issues(tmp_path / "empty")[0].path == "<file>"


def test_load_bundle_when_split_validation_file_broken_then_error_names_that_file(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    del valid["validation"]
    write_yaml(valid, "split/strategy.yaml")
    (tmp_path / "split" / "validation.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(SpecError) as info:
        load_bundle(tmp_path / "split")
    assert info.value.source.endswith("validation.yaml")


def test_intake_when_inbox_with_good_and_bad_then_one_result_each_sorted(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    write_yaml(valid, "inbox/a_good.yaml")
    write_yaml("id: [broken\n", "inbox/b_bad.yaml")
    (inbox / "c_binary.json").write_bytes(b"\x00\x01")
    report = valid.pop("validation")
    write_yaml(valid, "inbox/d_folder/strategy.yaml")
    write_yaml(report, "inbox/d_folder/validation.yaml")
    write_yaml({"id": "x"}, "inbox/e_partial.yml")
    (inbox / "README.md").write_text("not a bundle")
    (inbox / ".hidden.yaml").write_text("junk: [")
    (inbox / "not_a_bundle_dir").mkdir()
    results = intake(inbox)
    assert [r.path.name for r in results] == ["a_good.yaml", "b_bad.yaml", "c_binary.json", "d_folder", "e_partial.yml"]
    assert [r.ok for r in results] == [True, False, False, True, False]
    for result in results:
        assert (result.bundle is None) == (result.error is not None)
    assert results[1].error is not None
    assert results[1].error.issues[0].path.startswith("line ")


def test_intake_when_single_file_or_bundle_folder_then_one_result(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    assert len(intake(write_yaml(valid, "solo.yaml"))) == 1
    write_yaml(valid, "folder/bundle.yaml")
    (result,) = intake(tmp_path / "folder")
    assert result.ok


def test_intake_when_examples_folder_then_all_accepted() -> None:
    results = intake(EXAMPLES)
    # the four strategies, and the demo's copy of the first by a second team (the one its risk gate refuses)
    assert sorted(r.path.name for r in results) == sorted([*EXAMPLE_FILES, "trend_ema_cross_team_b.yaml"])
    assert all(r.ok for r in results)


def test_intake_when_path_missing_then_single_error_result(tmp_path: Path) -> None:
    (result,) = intake(tmp_path / "missing")
    assert result.error is not None
    assert result.bundle is None
