"""execdesk.lead."""
