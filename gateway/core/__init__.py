"""Plain types and the error hierarchy shared by every layer. Imports nothing from the package."""
