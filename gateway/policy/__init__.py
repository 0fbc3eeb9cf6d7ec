"""Routing policies: typed models (``models``), loading with file:line errors (``loader``), hot reload (``reload``)."""
