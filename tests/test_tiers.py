"""The tier classification itself: what puts a test in the end-to-end tier, and what the fast tier refuses.

The inner session runs the project's own conftest, so these tests pin the hooks the suite relies on.
It is marked ``e2e`` because its inner tests start processes and listen on sockets, which the fast tier's
guard (in this process) would refuse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CONFTEST = Path(__file__).with_name("conftest.py")

INNER_TESTS = """
import socket
import subprocess

import pytest


@pytest.fixture
def child(e2e_tier):
    return subprocess.run(["true"], check=True).returncode


@pytest.fixture(scope="module")
def module_child():
    return subprocess.run(["true"], check=True).returncode


def test_unmarked_module_fixture_that_spawns(module_child):
    assert module_child == 0


def test_fast_and_quiet():
    assert True


def test_unmarked_subprocess():
    subprocess.run(["true"], check=True)


def test_unmarked_listen_even_when_the_refusal_is_caught():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        with pytest.raises(AssertionError):
            server.listen()


@pytest.mark.e2e
def test_marked_e2e_may_listen_and_spawn():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
    subprocess.run(["true"], check=True)


@pytest.mark.packaging
def test_marked_packaging_may_spawn():
    subprocess.run(["true"], check=True)


def test_a_fixture_requesting_e2e_tier_marks_its_tests(child):
    assert child == 0
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_inner=INNER_TESTS)
    pytester.makeini("[pytest]\nmarkers =\n  e2e: e2e\n  packaging: packaging\n")
    return pytester


def test_a_test_without_a_marker_that_starts_a_process_or_listens_fails(suite: pytest.Pytester) -> None:
    recorded = suite.inline_run("--strict-markers")
    passed, skipped, failed = recorded.listoutcomes()
    assert sorted(str(report.head_line) for report in failed) == [
        "test_unmarked_listen_even_when_the_refusal_is_caught",
        "test_unmarked_module_fixture_that_spawns",
        "test_unmarked_subprocess",
    ]
    assert sorted(str(report.head_line) for report in passed) == [
        "test_a_fixture_requesting_e2e_tier_marks_its_tests",
        "test_fast_and_quiet",
        "test_marked_e2e_may_listen_and_spawn",
        "test_marked_packaging_may_spawn",
    ]
    assert not skipped
    messages = {report.head_line: str(report.longrepr) for report in failed}
    assert "starting a subprocess" in messages["test_unmarked_subprocess"]
    assert "mark the test" in messages["test_unmarked_subprocess"]
    assert "listening on a socket" in messages["test_unmarked_listen_even_when_the_refusal_is_caught"]
    # a module-scoped fixture starts during its first test's setup, which is guarded too
    assert "starting a subprocess" in messages["test_unmarked_module_fixture_that_spawns"]


def test_the_fast_tier_selects_only_tests_without_slow_tier_markers(suite: pytest.Pytester) -> None:
    recorded = suite.inline_run("--strict-markers", "-m", "not e2e and not packaging")
    ran = [report.nodeid.split("::")[-1] for report in recorded.getreports("pytest_runtest_logreport")]
    deselected = [item.name for call in recorded.getcalls("pytest_deselected") for item in call.items]
    assert sorted(set(ran)) == [
        "test_fast_and_quiet",
        "test_unmarked_listen_even_when_the_refusal_is_caught",
        "test_unmarked_module_fixture_that_spawns",
        "test_unmarked_subprocess",
    ]
    assert sorted(deselected) == [
        "test_a_fixture_requesting_e2e_tier_marks_its_tests",
        "test_marked_e2e_may_listen_and_spawn",
        "test_marked_packaging_may_spawn",
    ]


SHARED_ENDPOINT_TESTS = """
import os

import pytest


@pytest.fixture(scope="module")
def endpoint(e2e_tier):
    return os.environ["PYTEST_XDIST_WORKER"]


@pytest.mark.parametrize("n", range(6))
def test_on_the_shared_endpoint(endpoint, n):
    with open("shared-workers.txt", "a") as seen:
        seen.write(endpoint + " ")


@pytest.mark.parametrize("n", range(6))
def test_independent(n):
    pass
"""


def test_tests_sharing_a_module_endpoint_run_on_one_worker_under_loadgroup(suite: pytest.Pytester) -> None:
    # GIVEN a module whose tests share a module-scoped endpoint, beside tests that share nothing
    suite.makepyfile(test_shared=SHARED_ENDPOINT_TESTS)

    # WHEN the suite runs as `./run test` runs it (xdist workers, loadgroup)
    result = suite.runpytest_subprocess(
        "-n", "3", "--dist", "loadgroup", "-s", "-p", "no:randomly", "test_shared.py"
    )

    # THEN every test of the shared endpoint ran on one worker (the endpoint started once)
    result.assert_outcomes(passed=12)
    workers = (suite.path / "shared-workers.txt").read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers
