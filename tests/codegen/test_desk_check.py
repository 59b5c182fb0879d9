"""The desk's pre-trade check in generated strategies (``render_strategy(..., desk_check=True)``): only in the bots
the desk deploys, only behind their config key, inside the codegen's safety review, and inert in Freqtrade's
backtests. Plain ``execdesk codegen`` output is unchanged (the oracle's digests hold its sha256)."""

from __future__ import annotations

import ast
import io
import socket
import tokenize
from pathlib import Path

import pytest

from execdesk.codegen.audit import audit_source
from execdesk.codegen.render import (
    DESK_CHECK_KEY,
    GeneratedStrategy,
    StakeSizing,
    render_strategy,
)
from execdesk.codegen.review import review
from execdesk.freqtrade.runner import backtest_strategy
from execdesk.strategy import load_bundle

from .conftest import EXAMPLE_FILES, EXAMPLES, make_bundle, market
from .test_render import assert_compiles_passes_ruff_and_audit

SIZINGS = (None, StakeSizing.risk(0.01, 0.25))


@pytest.fixture(scope="module")
def desk() -> GeneratedStrategy:
    return render_strategy(load_bundle(EXAMPLES / "mean_revert_bbands.yaml"), None, desk_check=True)


def _method(source: str, name: str) -> ast.FunctionDef:
    [cls] = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    [method] = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return method


@pytest.mark.parametrize("name", EXAMPLE_FILES)
@pytest.mark.parametrize("sizing", SIZINGS)
def test_render_when_plain_then_no_desk_check_and_with_it_the_same_code_plus_the_check(
        name: str, sizing: StakeSizing | None) -> None:
    bundle = load_bundle(EXAMPLES / name)
    plain, desk = render_strategy(bundle, sizing), render_strategy(bundle, sizing, desk_check=True)
    for word in ("confirm_trade_entry", DESK_CHECK_KEY, "urllib", "import json", "127.0.0.1"):
        assert word not in plain.source
        assert word not in plain.readme
    assert not plain.desk_check
    assert not plain.allowed.desk_check
    # the check is an addition: every line of the plain strategy is in the desk's, in the same order
    lines = iter(desk.source.splitlines())
    assert all(any(line == other for other in lines) for line in plain.source.splitlines())
    assert (desk.class_name, desk.filename, desk.expected) == (plain.class_name, plain.filename, plain.expected)
    assert "desk pre-trade check" in desk.readme


@pytest.mark.parametrize("name", EXAMPLE_FILES)
@pytest.mark.parametrize("sizing", SIZINGS)
def test_render_when_desk_check_then_compiles_passes_ruff_and_audit(name: str, sizing: StakeSizing | None,
                                                                    tmp_path: Path) -> None:
    generated = render_strategy(load_bundle(EXAMPLES / name), sizing, desk_check=True)
    assert_compiles_passes_ruff_and_audit(generated, tmp_path)
    tokens = {t.string for t in tokenize.generate_tokens(io.StringIO(generated.source).readline)
              if t.type == tokenize.NAME}
    assert tokens <= generated.allowed.identifiers() | {"True", "False", "None", "is", "not", "in", "if", "return",
                                                        "try", "except", "as", "def", "class", "import", "from",
                                                        "and", "or"}


def test_desk_check_when_read_then_nothing_is_called_before_the_config_key_and_the_run_mode(
        desk: GeneratedStrategy) -> None:
    method = _method(desk.source, "confirm_trade_entry")
    body = method.body[1:]  # after the docstring
    assert ast.unparse(body[0]) == f"desk = self.config.get('{DESK_CHECK_KEY}')"
    assert ast.unparse(body[1]) == "if desk is None:\n    return True"
    tries = [n for n in body if isinstance(n, ast.Try)]
    assert len(tries) == 1
    guard = tries[0].body[0]
    assert ast.unparse(guard) == "if self.dp.runmode.value not in ('live', 'dry_run'):\n    return True"
    calls = [ast.unparse(n.func) for n in ast.walk(tries[0]) if isinstance(n, ast.Call)]
    assert "urllib.request.urlopen" in calls
    [urlopen] = [n for n in ast.walk(method) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("urlopen")]
    assert urlopen.lineno > guard.lineno > body[1].lineno
    assert ast.unparse(urlopen.args[0]) == "'http://127.0.0.1:' + str(int(desk['port'])) + '/pretrade'"
    [handler] = tries[0].handlers
    assert ast.unparse(handler.body[-1]) == "return False"  # any error refuses the entry


def test_audit_when_desk_check_in_a_plain_strategy_then_refused(desk: GeneratedStrategy) -> None:
    plain = render_strategy(load_bundle(EXAMPLES / "mean_revert_bbands.yaml"))
    rules = {f.rule for f in audit_source(desk.source, plain.allowed)}
    assert {"modules", "names", "nodes"} <= rules


_URL = '"http://127.0.0.1:" + str(int(desk["port"])) + "/pretrade"'
PLANTED = [
    ("host", lambda s: s.replace(_URL, '"http://evil.example:" + str(int(desk["port"])) + "/pretrade"'), "calls"),
    ("port as text", lambda s: s.replace('str(int(desk["port"]))', 'desk["port"]'), "calls"),
    ("other path", lambda s: s.replace(_URL, '"http://127.0.0.1:" + str(int(desk["port"])) + "/x"'), "calls"),
    ("urlretrieve", lambda s: s.replace("urllib.request.urlopen(", "urllib.request.urlretrieve(", 1), "names"),
    ("import urllib", lambda s: s.replace("import urllib.request\n", "import urllib\n"), "modules"),
    ("alias", lambda s: s.replace("import json\n", "import json as js\n"), "imports"),
    ("import os", lambda s: s.replace("import json\n", "import json\nimport os\n"), "modules"),
    ("except anything", lambda s: s.replace("except Exception as error:", "except BaseException as error:"), "nodes"),
    ("a message", lambda s: s.replace("refused by the desk's pre-trade check", "rm -rf /"), "strings"),
    ("eval", lambda s: s.replace("json.loads(reply.read())", "eval(reply.read())"), "calls"),
    ("json.load", lambda s: s.replace("json.loads(", "json.load(", 1), "names"),
    ("network in populate", lambda s: s.replace(
        "        return dataframe\n",
        '        dataframe["rsi"] = urllib.request.urlopen("http://127.0.0.1:" + str(int(1)) + "/pretrade")\n'
        "        return dataframe\n", 1), "names"),
    ("config in populate", lambda s: s.replace(
        "        return dataframe\n", '        dataframe["rsi"] = self.config.get("x")\n        return dataframe\n', 1),
     "names"),
    ("try in populate", lambda s: s.replace(
        "        return dataframe\n",
        "        try:\n            return dataframe\n"
        "        except Exception as error:\n            return dataframe\n", 1), "nodes"),
]


@pytest.mark.parametrize(("what", "plant", "rule"), PLANTED, ids=[p[0] for p in PLANTED])
def test_audit_when_desk_check_tampered_then_refused(desk: GeneratedStrategy, what: str, plant: object,
                                                     rule: str) -> None:
    source = plant(desk.source)  # type: ignore[operator]
    assert source != desk.source, what
    assert rule in {f.rule for f in audit_source(source, desk.allowed)}


def test_review_when_desk_check_then_every_check_passes_with_freqtrades_loader(desk: GeneratedStrategy,
                                                                              tmp_path: Path) -> None:
    report = review(desk, tmp_path)
    assert report.passed, report.to_markdown()
    load = report.check("freqtrade_load")
    assert load.data is not None
    assert load.data["connection_attempts"] == 0


@pytest.mark.slow
def test_backtest_when_desk_check_configured_then_never_asked_and_same_trades_as_plain(tmp_path: Path) -> None:
    # Arrange: a bot's config key pointing at a port where a listener would count any connection
    bundle = make_bundle(pairs=["BTC/USDT"])
    frames = market(("BTC/USDT",), "1h", 1500)
    plain, desk = render_strategy(bundle), render_strategy(bundle, desk_check=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    key = {DESK_CHECK_KEY: {"port": listener.getsockname()[1], "deployment_id": "STR-950-v1", "token": "t" * 43,
                            "timeout_s": 2.0}}
    try:
        paths = {}
        for generated, folder in ((plain, "plain"), (desk, "desk")):
            (tmp_path / folder).mkdir()
            paths[folder] = tmp_path / folder / generated.filename
            paths[folder].write_text(generated.source)
        # Act
        ran_plain = backtest_strategy(paths["plain"], plain.class_name, frames, "1h")
        ran_desk = backtest_strategy(paths["desk"], desk.class_name, frames, "1h", extra_config=key)
        # Assert: the harness's guard refuses and counts any connection, loopback included
        assert ran_desk.config[DESK_CHECK_KEY] == key[DESK_CHECK_KEY]
        assert ran_desk.connection_attempts == 0
        with pytest.raises(BlockingIOError):
            listener.accept()
        assert len(ran_plain.trades) > 3
        assert ran_desk.trades == ran_plain.trades
    finally:
        listener.close()
