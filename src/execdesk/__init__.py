"""execdesk: the execution desk for validated algorithmic crypto strategies.

The package is laid out by role (``strategy``/``backtest``/``codegen``, ``risk``, ``execution``/``venues``,
``monitor``, ``lead``) over shared ground (``domain``, ``data``, ``store``); ``desk`` is the engine that runs
the bars and applies what the roles answer, ``freqtrade`` the glue to Freqtrade's subprocesses. The CLI
(``execdesk.cli``) and the API (``execdesk.api``) are thin edges over the application layer (``execdesk.api.actions``).

Nothing here imports Freqtrade: it is driven in subprocesses so that ``execdesk --help`` stays fast.
"""

__version__ = "0.1.0"

import logging as _logging

# a library logs; the application decides where to (Python's last-resort handler would print alerts)
_logging.getLogger("execdesk").addHandler(_logging.NullHandler())
