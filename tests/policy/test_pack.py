"""The pack as the CLI sees it, and the module users import."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
from pulumi.runtime import proto

from filepipe.policy import POLICIES
from tests.policy.engine import LEVELS, PACK_DIR, REPO


@pytest.mark.e2e
def test_importing_the_rules_starts_no_policy_server():
    # A PolicyPack never returns: if the import constructed one, this would time out.
    result = subprocess.run(
        [sys.executable, "-c", "import filepipe.policy as p; print(len(p.POLICIES))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(POLICIES)


def test_the_pack_serves_every_rule_at_its_own_level(pack):
    info = pack.info()

    served = {policy.name: LEVELS[policy.enforcementLevel] for policy in info.policies}
    assert info.name == "filepipe"
    assert served == {
        policy.name: policy.enforcement_level.value for policy in POLICIES if policy.enforcement_level
    }
    assert len(served) == len(POLICIES)
    assert proto.ADVISORY in {policy.enforcementLevel for policy in info.policies}


def test_rule_names_are_unique_and_described():
    names = [policy.name for policy in POLICIES]

    assert len(names) == len(set(names))
    assert all(policy.description.endswith(".") for policy in POLICIES)


def test_the_pack_readme_maps_every_rule_with_its_level():
    readme = (PACK_DIR / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (mandatory|advisory) \|", readme, flags=re.MULTILINE))

    assert rows == {
        policy.name: policy.enforcement_level.value for policy in POLICIES if policy.enforcement_level
    }


def test_the_pack_installs_the_same_pulumi_policy_range_as_the_library():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    library = [d for d in project["project"]["dependencies"] if d.startswith("pulumi-policy")]
    pack = [
        line
        for line in (PACK_DIR / "requirements.txt").read_text().splitlines()
        if line.startswith("pulumi-policy")
    ]

    assert library == pack and len(pack) == 1
