"""Message templates (Jinja2, plain text): `<event>.<lang>.j2` with blocks `subject` and `body`,
and `footer.<lang>.j2`. A package only so that the templates ship with the server."""
