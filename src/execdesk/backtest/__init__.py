"""execdesk.backtest."""
