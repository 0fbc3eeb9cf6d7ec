"""The HTTP surface: the ASGI entrance for the proxy routes, FastAPI routes for the rest, body reading, error rendering."""
