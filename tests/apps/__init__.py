"""ASGI apps the tests run under uvicorn (see tests/helpers/servers.py)."""
