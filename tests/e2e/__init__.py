"""End-to-end conformance tests (a package, so its conftest does not shadow tests/conftest.py)."""
