"""Fixtures for the front-end tests: a running fogate per test, stopped (and checked for a
clean exit and sanitizer silence) at teardown."""

import pytest

import frontkit


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
