"""execdesk.store."""
