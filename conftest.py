"""Fixtures shared by every test: a real PostgreSQL database and a real Redis per test session.

The servers come from ``VITALIS_TEST_DATABASE_URL`` / ``VITALIS_TEST_REDIS_URL`` (defaulting to the
local servers on 127.0.0.1); when none answers, embedded ones are started for the session.
Each test gets a fresh database of its own and a unique Redis key prefix; nothing else is dropped.
"""
