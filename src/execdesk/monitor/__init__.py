"""execdesk.monitor."""
