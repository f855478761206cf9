"""Browser tests (a package so that its conftest does not shadow Tests/Peers/conftest.py
in a combined pytest run: Peers' tests import names from `conftest`)."""
