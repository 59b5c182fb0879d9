"""execdesk.api."""
