"""The HTTP surface: routes, request validation, SSE framing, error rendering and authentication."""
