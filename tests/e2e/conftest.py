"""Fixtures shared by the end-to-end tests: a running fogate per test for the front-end tests,
stopped (and checked for a clean exit and sanitizer silence) at teardown, and a module-wide
fosim with the default config (a module that needs another config defines its own `sim`)."""

import pytest

import frontkit
import harness
from harness import workdir  # noqa: F401  (module-wide temporary directory fixture)


@pytest.fixture(scope="module")
def sim(workdir):  # noqa: F811
    """A fosim with the default config shared by a test module; asserts a clean exit."""
    s = harness.start_fosim(workdir)
    yield s
    assert s.stop() == 0, s.proc.log_tail()


@pytest.fixture
def start_front(tmp_path):
    """start_front(limits=..., timeouts=..., preexec_fn=...) -> a running frontkit.Fogate."""
    started = []

    def start(**kw):
        f = frontkit.Fogate(tmp_path, **kw)
        started.append(f)
        return f

    yield start
    for f in started:
        rc = f.stop()
        assert rc == 0, "fogate exited with %r; log:\n%s" % (rc, f.log_text())


@pytest.fixture
def front(start_front):
    return start_front()
