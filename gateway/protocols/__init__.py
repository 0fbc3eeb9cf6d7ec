"""Client-facing wire protocols, sans-io: parse and validate what a client sends, translate between
protocols, render answers. No sockets, no clocks; each module is tested with tables and golden shapes.

``openai``: validation of OpenAI chat, completions and embeddings bodies.
"""
