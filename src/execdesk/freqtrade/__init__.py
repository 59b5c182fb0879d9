"""Freqtrade glue, in one room: everything that runs Freqtrade (always in a subprocess, never imported by the
desk's own modules) and drives its bots.

* :mod:`~execdesk.freqtrade.runner` — runs :mod:`~execdesk.freqtrade.harness` (``python -m``) to load a generated
  strategy with Freqtrade's own loader and backtest it offline (the signal generator's review and proof);
* :mod:`~execdesk.freqtrade.bot` — a dry-run bot folder (strategy, config, compose file, checklist), its
  supervised ``freqtrade trade`` process (offline through :mod:`~execdesk.freqtrade.bot_harness`) and its REST
  client — the order executor's Freqtrade venue;
* :mod:`~execdesk.freqtrade.fleet` — a desk's bots: start, stop, sync their trades into the ledger, tell them to
  pause, resume or close everything.

The one offline seam (Freqtrade's exchange with its ccxt fetches replaced, a loopback-only network guard) lives
in the harness.
"""
