"""The ``local_stack`` fixture on a user's project (``examples/consumer``): waits that explain themselves,
and a teardown that runs when the test fails."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from filepipe.testing import LocalStack, PipelineTimeoutError

# No `e2e` marker on the tests that use `local_stack`: the fixture puts them in that tier (tests/conftest.py).
pytestmark = pytest.mark.filepipe_stack(project_dir="../../examples/consumer")

CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "consumer"


def test_a_wait_that_times_out_shows_the_pipelines_status(local_stack: LocalStack) -> None:
    # GIVEN the consumer's stack, and a file that was never sent
    # WHEN a test waits for its outcome
    with pytest.raises(PipelineTimeoutError) as raised:
        local_stack.wait_until_final("orders", "incoming/orders/never-sent.ndjson", timeout=1)

    # THEN the error says what was awaited and what the pipeline is doing
    message = str(raised.value)
    assert message.startswith("waited 1 s for 'incoming/orders/never-sent.ndjson' to reach a final state")
    assert "pipeline orders status: {" in message
    assert '"queue": {' in message and '"dlq": {' in message and '"alarms": {' in message


def test_a_file_retried_by_its_processor_is_seen_as_it_runs(local_stack: LocalStack) -> None:
    # GIVEN a processor whose downstream is unavailable (the processor's module is the function's code)
    import transforms  # type: ignore[import-not-found]  # the consumer's src/, imported by the runtime

    transforms.RATES_AVAILABLE = False
    try:
        key = local_stack.send("orders", "later.ndjson", b'{"id": "a", "amount": 1, "currency": "EUR"}\n')
        # THEN the file is retried (a transient error is recorded), not failed
        with pytest.raises(PipelineTimeoutError, match=r'"PROCESSING": 1'):
            local_stack.wait_until_final("orders", key, timeout=3)
        assert local_stack.state("orders", key)["error_type"] == "RetryLaterError"  # type: ignore[index]
    finally:
        transforms.RATES_AVAILABLE = True
    # AND once the downstream is back, the retry succeeds
    assert local_stack.wait_until_final("orders", key).status == "SUCCEEDED"


@pytest.mark.e2e  # its inner session starts the stack
def test_the_stack_is_stopped_after_a_failing_test(pytester: pytest.Pytester) -> None:
    # GIVEN a user's test that starts the stack and fails
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.filepipe_stack(project_dir={str(CONSUMER)!r})
        def test_fails(local_stack):
            with open("endpoint.txt", "w") as out:
                out.write(str(local_stack.address.port))
            assert False, "the user's assertion"
        """
    )

    # WHEN it runs
    result = pytester.runpytest_inprocess()

    # THEN it failed on its own assertion, and the endpoint it started no longer listens
    result.assert_outcomes(failed=1)
    port = int((pytester.path / "endpoint.txt").read_text())
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
