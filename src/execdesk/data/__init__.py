"""execdesk.data."""
