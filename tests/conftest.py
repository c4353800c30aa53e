"""Fixtures shared by every test: no test may reach a real AWS account."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from moto import settings as moto_settings


# moto runs a Lambda function itself (in docker) when an in-process mock_aws delivers to an event source
# mapping, and first asks docker for its host address by running `curl`: a subprocess, once per process,
# in whichever test comes first. No test runs functions in moto's docker (there is none; the local
# runtime runs them in-process), so the address is fixed here and no test starts that process.
@functools.cache
def _moto_server_host() -> str:
    return "http://host.docker.internal"


moto_settings.moto_server_host = _moto_server_host

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"
"""moto's default account id; the Pulumi mocks report the same one."""


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and an explicit region, set before any boto3 client is created."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for leaked in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(leaked, raising=False)


# --- the two tiers -----------------------------------------------------------------------------------
# `./run test-fast` runs every test that starts no endpoint and no subprocess (`-m "not e2e and not
# packaging"`); `./run test` runs them all. A test lands in the slow tier by its `e2e` or `packaging`
# marker, set by hand or, for a test that uses a fixture which starts an endpoint or a process, by that
# fixture requesting `e2e_tier` (below). What the fast tier may not do is enforced, not trusted: a test
# without either marker that starts a process or listens on a socket fails, in both tiers, so a new test
# cannot slip into the fast tier by forgetting its marker (and the fast tier stays fast and free of
# ports and child processes).

SLOW_TIER_MARKERS = ("e2e", "packaging")


@pytest.fixture(scope="session")
def e2e_tier() -> None:
    """Requested by a fixture that starts an endpoint or a process: every test using it is ``e2e``.

    Session-scoped so that fixtures of any scope can request it; it does nothing itself, the collection
    hook below reads it from each test's fixture closure.
    """


ENDPOINT_FIXTURES = ("e2e_tier", "local_stack")
"""``local_stack`` is the filepipe.testing plugin's: it starts an endpoint but, being the users' fixture,
cannot request this suite's ``e2e_tier``."""


# tryfirst: pytest-xdist's worker reads the `xdist_group` markers in its own modifyitems hook (to suffix
# the node ids it schedules by), which would otherwise run before this one and see none of them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if any(name in fixtures for name in ENDPOINT_FIXTURES) and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)
        if _shares_a_module_endpoint(item):
            # `./run test` distributes with `--dist loadgroup`: the tests of a module that share one
            # endpoint stay on one worker (it starts once); every other test goes wherever a worker is
            # free, so a module of independent end-to-end tests spreads over all workers.
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def _shares_a_module_endpoint(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definition.scope == "module" and "e2e_tier" in definition.argnames
        for definitions in info.name2fixturedefs.values()
        for definition in definitions
    )


def in_fast_tier(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in SLOW_TIER_MARKERS)


class SlowTierWorkError(AssertionError):
    """A test of the fast tier started a process or listened on a socket."""


class _FastTierGuard:
    """While installed, starting a process or listening on a socket is refused and recorded.

    Recorded as well as refused: code under test may catch the refusal (an endpoint turns a failed
    listen into its own error, which a test may expect), and the test must fail all the same.
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._saved: list[tuple[Any, str, Any]] = []

    def _refuse(self, what: str) -> NoReturn:
        self.attempts.append(what)
        raise SlowTierWorkError(
            f"{what} in a test without an e2e or packaging marker: mark the test (or have the fixture "
            "that does it request `e2e_tier`) so that it runs in the end-to-end tier"
        )

    def _replace(self, owner: Any, name: str, what: str) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, _INHERITED)))
        setattr(owner, name, lambda *args, **kwargs: self._refuse(f"{what} ({name})"))

    def install(self) -> None:
        self._replace(subprocess.Popen, "_execute_child", "starting a subprocess")
        for name in ("fork", "posix_spawn", "posix_spawnp", "system"):
            if hasattr(os, name):
                self._replace(os, name, "starting a process")
        self._replace(socket.socket, "listen", "listening on a socket")

    def uninstall(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


_INHERITED = object()


def _guarded(item: pytest.Item) -> Iterator[None]:
    if not in_fast_tier(item):
        yield
        return
    guard = _FastTierGuard()
    guard.install()
    try:
        yield
    finally:
        guard.uninstall()
    if guard.attempts:
        raise SlowTierWorkError(f"{item.nodeid}: {'; '.join(dict.fromkeys(guard.attempts))}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # Setup too: a module- or session-scoped fixture starts during the setup of its first test.
    yield from _guarded(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _guarded(item)
