"""execdesk.strategy."""
