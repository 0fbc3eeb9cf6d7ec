"""Upstream providers: one small protocol (``base.Provider``), implementations looked up by ``type``."""
