"""execdesk.execution."""
