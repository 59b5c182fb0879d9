"""The signal generator's code generation: bundle -> Freqtrade strategy, reviewed and proven.

:func:`generate` is the whole pipeline behind ``execdesk codegen BUNDLE --out DIR [--verify]``:

1. load and validate the bundle (:func:`execdesk.strategy.load_bundle`; a bad bundle raises
   :class:`~execdesk.errors.SpecError`, exit code 2);
2. render it (:mod:`execdesk.codegen.render`) and write ``<out>/<name>_v<version>.py`` and
   ``<out>/README.md``;
3. review the file (:mod:`execdesk.codegen.review`: compile, ruff, AST audit, Freqtrade's loader)
   -> ``review.json`` / ``review.md``;
4. with ``verify``, backtest it with Freqtrade offline and compare with the desk's reference
   signals and native engine (:mod:`execdesk.codegen.verify`) -> ``verification.json`` /
   ``verification.md``. Without ``data`` the candles are generated with
   :func:`execdesk.data.generate_market` (seed :data:`GENERATED_SEED`) for the bundle's pairs and
   timeframe over its validation period, and the report says so.

The returned :class:`CodegenReport` marks every failed check; ``report.exit_code`` is 0 when all
passed and 3 (:class:`~execdesk.errors.Refused`) otherwise, so the CLI is a thin call.
Freqtrade itself only ever runs in subprocesses (:mod:`execdesk.freqtrade.harness`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from execdesk.codegen.pipeline import (
        GENERATED_SEED,
        MAX_GENERATED_CANDLES,
        CodegenReport,
        generate,
        market_for_bundle,
    )
    from execdesk.codegen.render import GeneratedStrategy, StakeSizing, render_strategy
    from execdesk.codegen.review import CheckResult, ReviewReport
    from execdesk.codegen.verify import VerificationReport, VerifyConfig

__all__ = [
    "GENERATED_SEED",
    "MAX_GENERATED_CANDLES",
    "CheckResult",
    "CodegenReport",
    "GeneratedStrategy",
    "ReviewReport",
    "StakeSizing",
    "VerificationReport",
    "VerifyConfig",
    "generate",
    "market_for_bundle",
    "render_strategy",
]

# Imported on first use: a command that needs one part of the signal generator should not pay ~1 s for
# pandas, Jinja2 and the pipeline.
_LAZY = {
    "GENERATED_SEED": "execdesk.codegen.pipeline",
    "MAX_GENERATED_CANDLES": "execdesk.codegen.pipeline",
    "CodegenReport": "execdesk.codegen.pipeline",
    "generate": "execdesk.codegen.pipeline",
    "market_for_bundle": "execdesk.codegen.pipeline",
    "GeneratedStrategy": "execdesk.codegen.render",
    "StakeSizing": "execdesk.codegen.render",
    "render_strategy": "execdesk.codegen.render",
    "CheckResult": "execdesk.codegen.review",
    "ReviewReport": "execdesk.codegen.review",
    "VerificationReport": "execdesk.codegen.verify",
    "VerifyConfig": "execdesk.codegen.verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'execdesk.codegen' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
