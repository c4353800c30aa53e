"""Fixtures shared by every test: no test may reach a real AWS account."""

from __future__ import annotations

import pytest

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
