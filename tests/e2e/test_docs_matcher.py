"""The worked session's reading and matching (tests/e2e/test_docs_session.py) on plain inputs: how a doc's command
block is read, and when what a command printed is what the doc shows."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.test_docs_session import Command, File, compare, mismatch, normalise, parse_session, script, split_output

RULE = "─" * 40


def test_mismatch_when_the_lines_are_the_same_then_none() -> None:
    assert mismatch(["a", "b"], ["a", "b"]) is None


def test_mismatch_when_a_line_differs_then_it_names_the_doc_line_and_the_printed_one() -> None:
    why = mismatch(["equity 99,695.81", "trades 13"], ["equity 99,695.81", "trades 14"])
    assert why is not None
    assert "doc line 2 'trades 13'" in why
    assert "'trades 14'" in why


def test_mismatch_when_a_doc_line_is_dots_then_it_matches_any_run_of_lines_none_included() -> None:
    assert mismatch(["first", "...", "last"], ["first", "x", "y", "last"]) is None
    assert mismatch(["first", "  ...", "last"], ["first", "last"]) is None
    assert mismatch(["first", "..."], ["first"]) is None
    assert mismatch(["...", "last"], ["a", "b", "last"]) is None


def test_mismatch_when_dots_stand_for_lines_then_the_lines_after_them_must_still_come_in_order() -> None:
    assert mismatch(["...", "b", "a"], ["a", "b"]) is not None
    assert mismatch(["...", "c"], ["a", "b"]) is not None


def test_mismatch_when_dots_are_inside_a_line_then_they_match_any_text_and_the_rest_exactly() -> None:
    assert mismatch(["ledger: .../desk/ledger.sqlite"], ["ledger: /tmp/x/desk/ledger.sqlite"]) is None
    assert mismatch(["a ... c"], ["a  c"]) is None
    assert mismatch(["ledger: .../desk/ledger.sqlite"], ["ledger: /tmp/x/home/ledger.sqlite"]) is not None
    assert mismatch(["a ... c"], ["a b c d"]) is not None  # the line whole, not a prefix


def test_mismatch_when_the_output_has_more_lines_than_the_doc_then_it_says_where_they_begin() -> None:
    why = mismatch(["a"], ["a", "extra"])
    assert why is not None
    assert "'extra'" in why


def test_mismatch_when_the_output_has_fewer_lines_than_the_doc_then_it_names_the_missing_line() -> None:
    why = mismatch(["a", "b"], ["a"])
    assert why is not None
    assert "'b'" in why
    assert "<end of output>" in why


def test_mismatch_when_nothing_is_shown_then_nothing_may_be_printed() -> None:
    assert mismatch([], []) is None
    assert mismatch([], ["something"]) is not None


def test_mismatch_when_the_output_has_table_rules_and_borders_then_they_are_left_out() -> None:
    printed = ["gate     outcome", RULE, "intake   passed", "┏━━━┳━━━┓", "└───┴───┘"]
    assert mismatch(["gate     outcome", "intake   passed"], printed) is None


def test_mismatch_when_a_line_has_text_beside_box_characters_then_it_is_compared() -> None:
    assert mismatch(["a"], ["a", "│ STR-001-v1 │"]) is not None


def test_mismatch_when_only_trailing_spaces_differ_then_none() -> None:
    assert mismatch(["intake   passed"], ["intake   passed      "]) is None


def test_mismatch_when_blank_lines_differ_then_they_count() -> None:
    assert mismatch(["a", "b"], ["a", "", "b"]) is not None


def test_normalise_when_a_line_has_what_varies_between_runs_then_both_sides_read_the_same() -> None:
    assert normalise("29 fills, 0 denied, in 0.62 s") == normalise("29 fills, 0 denied, in 14.10 s")
    assert normalise("running already (pid 16665); one") == normalise("running already (pid 21545); one")
    assert (normalise("bar (live/control/pause-1795643185-000.json)")
            == normalise("bar (live/control/pause-1796658198-000.json)"))
    # the desk's own figures are not normalised
    assert normalise("equity 99,695.81 (-0.30%)") == "equity 99,695.81 (-0.30%)"
    assert normalise("waiting: execdesk approve dr-cf429e2e6f56") == "waiting: execdesk approve dr-cf429e2e6f56"
    assert normalise("pause-1796658198-001.json") != normalise("pause-1796658198-000.json")


DOC = """# Title

## A worked session

Text.

```
$ cd "$(mktemp -d)"
$ cp a b
```

```yaml
# desk.yaml
desk: {name: small}
```

```
$ execdesk run desk.yaml
desk ACTIVE
...
$ execdesk deploy x --token "$ALICE"
error: refused
[exit 3]
$ cat > live.yaml <<EOF
clock: wall
$ not a command: inside the here-document
EOF
$ kill %1; wait %1
[exit 143]
```

## Next section

```
$ not in the session
```
"""


def test_parse_session_when_read_then_files_commands_outputs_and_exit_codes_in_the_docs_order() -> None:
    lines = DOC.splitlines()

    def at(text: str) -> int:
        return lines.index(text) + 1

    assert parse_session(DOC) == [
        Command(at('$ cd "$(mktemp -d)"'), 'cd "$(mktemp -d)"'),
        Command(at("$ cp a b"), "cp a b"),
        File(at("# desk.yaml"), "desk.yaml", "# desk.yaml\ndesk: {name: small}\n"),
        Command(at("$ execdesk run desk.yaml"), "execdesk run desk.yaml", ["desk ACTIVE", "..."]),
        Command(at('$ execdesk deploy x --token "$ALICE"'), 'execdesk deploy x --token "$ALICE"', ["error: refused"],
                exit_code=3),
        Command(at("$ cat > live.yaml <<EOF"),
                "cat > live.yaml <<EOF\nclock: wall\n$ not a command: inside the here-document\nEOF"),
        Command(at("$ kill %1; wait %1"), "kill %1; wait %1", exit_code=143),
    ]


RUNNABLE = """## A worked session

```
$ printf 'no newline'
$ X=kept
```

```yaml
# desk.yaml
desk: {name: small}
```

```
$ cat desk.yaml; echo "$X"
$ echo no; (exit 3)
[exit 3]
$ sleep 30 &
$ kill %1; wait %1
[exit 143]
```
"""


def test_script_when_run_in_one_bash_then_each_commands_output_and_exit_code_is_read_back(tmp_path: Path) -> None:
    steps = parse_session(RUNNABLE)
    output = subprocess.run(["bash", "-c", script(steps)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60).stdout
    assert split_output(output) == {0: (["no newline"], 0), 1: ([], 0),
                                    3: (["# desk.yaml", "desk: {name: small}", "kept"], 0),
                                    4: (["no"], 3), 5: ([], 0), 6: ([], 143)}


def test_compare_when_a_command_differs_then_the_report_shows_it_the_docs_lines_and_what_it_printed() -> None:
    steps: list[Command | File] = [Command(12, "execdesk status --home desk", ["desk ACTIVE", "STR-001-v1   live"]),
                                   Command(14, "execdesk deploy x", ["error: refused"], exit_code=3)]
    problems = compare(steps, {0: (["desk ACTIVE", "STR-001-v1   paused"], 0), 1: (["error: refused"], 2)})
    assert len(problems) == 2
    status, deploy = problems
    assert status.startswith("DEPLOYMENTS.md:12: $ execdesk status --home desk\n")
    assert "doc line 2 'STR-001-v1   live' not matched" in status
    assert "  the doc shows:\n    | desk ACTIVE\n    | STR-001-v1   live\n" in status
    assert status.endswith("  it printed:\n    | desk ACTIVE\n    | STR-001-v1   paused")
    assert "exit 2, the doc shows 3" in deploy


def test_compare_when_every_command_printed_what_the_doc_shows_then_nothing_is_reported() -> None:
    steps: list[Command | File] = [File(3, "desk.yaml", "desk: {}\n"), Command(8, "true"),
                                   Command(9, "false", exit_code=1)]
    assert compare(steps, {1: ([], 0), 2: ([], 1)}) == []
