"""execdesk.domain."""
