"""The dashboard: server-rendered pages (Jinja2) and the plain JavaScript they load."""
