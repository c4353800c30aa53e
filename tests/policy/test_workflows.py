"""The workflows, beyond what actionlint can see: with actions pinned to commits, actionlint does not know
their inputs, so the inputs used are checked here against the pinned releases' action.yml."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.policy.engine import PACK_DIR, REPO

WORKFLOWS = REPO / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
INPUTS = {
    # From action.yml of the pinned releases.
    "pulumi/actions": {
        "command", "stack-name", "pulumi-version", "work-dir", "comment-on-pr", "comment-on-summary",
        "github-token", "cloud-url", "policyPacks", "policyPackConfigs", "refresh", "diff", "expect-no-changes",
    },
    "aws-actions/configure-aws-credentials": {"aws-region", "role-to-assume", "role-session-name", "audience"},
    "actions/checkout": {"ref", "persist-credentials", "fetch-depth"},
    "actions/setup-python": {"python-version", "cache"},
    "actions/cache": {"path", "key", "restore-keys"},
}  # fmt: skip


def load(name):
    text = (WORKFLOWS / name).read_text()
    document = yaml.safe_load(text)
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads a bare `on` as true
    return text, document


def steps(document):
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def action(step):
    return step.get("uses", "").split("@")[0]


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml", "deploy.yml"])
def test_actions_are_pinned_to_commits_with_their_version_and_known_inputs(name):
    text, document = load(name)

    for step in steps(document):
        if "uses" not in step:
            continue
        assert PINNED.match(step["uses"]), step["uses"]
        assert re.search(re.escape(step["uses"]) + r" # v\d+\.\d+\.\d+$", text, flags=re.MULTILINE)
        assert set(step.get("with", {})) <= INPUTS[action(step)], step


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml", "deploy.yml"])
def test_no_static_aws_keys(name):
    text, _ = load(name)

    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_ci_runs_the_readme_test_command_on_pushes_and_pull_requests():
    _, document = load("ci.yml")

    assert set(document["on"]) == {"push", "pull_request"}
    assert any(step.get("run") == "./run test" for step in steps(document))


def test_preview_runs_the_pack_per_stack_and_reports_on_the_pull_request():
    _, document = load("preview.yml")
    preview = document["jobs"]["preview"]
    pulumi = next(step for step in preview["steps"] if action(step) == "pulumi/actions")
    credentials = next(s for s in preview["steps"] if action(s) == "aws-actions/configure-aws-credentials")

    assert set(document["on"]) == {"pull_request"}
    assert document["permissions"]["id-token"] == "write"
    assert "github.head_ref" in document["concurrency"]["group"]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["comment-on-pr"] is True and pulumi["with"]["comment-on-summary"] is True
    assert (REPO / pulumi["with"]["policyPacks"]) == PACK_DIR and (PACK_DIR / "PulumiPolicy.yaml").is_file()
    assert credentials["with"]["role-to-assume"].startswith("${{ vars.")
    assert any("filepipe graph" in step.get("run", "") for step in preview["steps"])


def test_preview_checks_the_plugin_schema_without_cloud_credentials():
    _, document = load("preview.yml")
    job = document["jobs"]["plugin-schema"]
    command = next(step["run"] for step in job["steps"] if "run" in step)

    assert command.startswith("./run pytest tests/provider/test_schema.py")
    assert (REPO / "tests" / "provider" / "test_schema.py").is_file()
    assert not any(action(step) == "aws-actions/configure-aws-credentials" for step in job["steps"])


def test_deploy_runs_up_behind_the_stacks_environment_after_ci_on_main():
    _, document = load("deploy.yml")
    up = document["jobs"]["up"]
    pulumi = next(step for step in up["steps"] if action(step) == "pulumi/actions")

    assert document["on"]["workflow_run"] == {
        "workflows": ["ci"],
        "types": ["completed"],
        "branches": ["main"],
    }
    assert up["environment"] == "${{ matrix.stack }}"
    assert up["concurrency"]["cancel-in-progress"] is False
    assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "policy"


def test_deploy_updates_only_the_stacks_named_for_deployment_not_every_example_stack():
    _, document = load("deploy.yml")
    listing = next(step for step in document["jobs"]["stacks"]["steps"] if step.get("id") == "list")

    assert listing["env"]["DEPLOY_STACKS"] == "${{ vars.DEPLOY_STACKS || '[\"dev\"]' }}"
    assert "$DEPLOY_STACKS" in listing["run"]
