"""execdesk: the execution desk for validated algorithmic crypto strategies.

The package is laid out by role (``codegen``, ``risk``, ``venues``/``execution``, ``monitor``,
``lead``) over shared ground (``domain``, ``strategy``, ``backtest``, ``data``, ``store``). The CLI
(``execdesk.cli``) and the API (``execdesk.api``) are thin edges over the lead's service layer.

Nothing here imports Freqtrade: it is driven in subprocesses so that ``execdesk --help`` stays fast.
"""

__version__ = "0.1.0"

import logging as _logging

# a library logs; the application decides where to (Python's last-resort handler would print alerts)
_logging.getLogger("execdesk").addHandler(_logging.NullHandler())
