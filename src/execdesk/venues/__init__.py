"""execdesk.venues."""
