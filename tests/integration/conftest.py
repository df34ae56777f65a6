"""Integration tests use the real-service fixtures of tests/conftest.py (emulator, worker, emu_org, emu_flow)."""

from tests.conftest import wait_final  # noqa: F401  (imported by the tests here)
