"""Code that mypy checks for the types it infers (see ``[tool.mypy] files`` in pyproject.toml)."""
