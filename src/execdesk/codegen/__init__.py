"""execdesk.codegen."""
