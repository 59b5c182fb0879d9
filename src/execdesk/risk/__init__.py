"""execdesk.risk."""
