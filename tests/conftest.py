"""Shared fixtures: run the command line in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_cli(*args: str, cwd=None, timeout: float = 300, env=None) -> CliResult:
    """``python -m gradwise ARGS`` in a fresh process (no terminal, so no progress bars)."""
    proc = subprocess.run(
        [sys.executable, "-m", "gradwise", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The suite's models are tiny: one torch thread is faster and immune to other load."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def no_storage_from_the_environment():
    """`tune` and `worker` read --storage from GRADWISE_STORAGE: a developer's own setting
    must not send the suite's studies to their database (tests that need it set it)."""
    saved = os.environ.pop("GRADWISE_STORAGE", None)
    yield
    if saved is not None:
        os.environ["GRADWISE_STORAGE"] = saved


# ---- PostgreSQL (tuning engineer): a fresh database on the real server per test session ----

POSTGRES_ADMIN_URL = os.environ.get("GRADWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a database created for this test session on the real server, dropped at the end.

    Skipped only when the server is unreachable and the CI variable is unset; in CI an
    unreachable server is a failure.
    """
    import uuid

    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({str(error).strip().splitlines()[0]}); start it or set GRADWISE_TEST_POSTGRES")
    name = f"gradwise_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
