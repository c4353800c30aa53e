"""The pytest plugin's configuration (marker, fixture parameters, project folder) and its missing-extra line.

The inner sessions run in this process (pytester's in-process mode) with the plugin loaded from the
installed entry point, as in a user's project; none of them starts an endpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from filepipe.cli.main import main
from filepipe.extras import LOCAL_EXTRA_MODULES, needs_local_extra
from filepipe.testing.plugin import project_dir_for

OPTIONS_CONFTEST = """
import json
import pytest
from filepipe.testing.plugin import stack_options

@pytest.fixture
def local_stack(request):
    # The plugin's option reading, without starting a stack.
    return stack_options(request)
"""


def test_the_plugin_is_registered_by_the_installed_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--markers")

    result.stdout.fnmatch_lines(
        ["@pytest.mark.filepipe_stack(stack='dev', project_dir=None, fast=True, tuning=None):*"]
    )


def test_options_come_from_the_closest_marker_then_the_fixture_parameter(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(OPTIONS_CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.filepipe_stack(stack="module", fast=False)

        def test_module_marker(local_stack):
            assert local_stack == {"stack": "module", "fast": False}

        @pytest.mark.filepipe_stack(stack="test", tuning={"concurrency": 1})
        def test_test_marker_wins(local_stack):
            assert local_stack == {"stack": "test", "fast": False, "tuning": {"concurrency": 1}}

        @pytest.mark.parametrize("local_stack", [{"stack": "param"}], indirect=True)
        def test_parameter_wins(local_stack):
            assert local_stack == {"stack": "param", "fast": False}
        """
    )

    result = pytester.runpytest_inprocess()

    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("usage", "complaint"),
    [
        pytest.param(
            '@pytest.mark.filepipe_stack(stak="dev")', "unknown local_stack option(s) ['stak']", id="typo"
        ),
        pytest.param('@pytest.mark.filepipe_stack("dev")', "takes keyword arguments only", id="positional"),
        pytest.param(
            '@pytest.mark.parametrize("local_stack", ["dev"], indirect=True)',
            "local_stack parameters are a dict",
            id="not-a-dict",
        ),
    ],
)
def test_a_mistaken_option_is_named(pytester: pytest.Pytester, usage: str, complaint: str) -> None:
    pytester.makeconftest(OPTIONS_CONFTEST)
    pytester.makepyfile(f"import pytest\n\n{usage}\ndef test_it(local_stack):\n    pass\n")

    result = pytester.runpytest_inprocess()

    assert result.ret != 0
    assert complaint in result.stdout.str()


def test_the_project_is_the_nearest_folder_holding_pulumi_yaml(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    test_file = tmp_path / "tests" / "unit" / "test_x.py"
    test_file.parent.mkdir(parents=True)

    assert project_dir_for(test_file, None, Path("/elsewhere")) == tmp_path
    assert project_dir_for(test_file, "../../infra", Path("/elsewhere")) == tmp_path / "infra"
    assert project_dir_for(tmp_path.parent / "t.py", None, tmp_path / "root") == tmp_path / "root"


@pytest.fixture
def without_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python refuses to import a module set to None in sys.modules: as if the extra were not installed."""
    monkeypatch.setitem(sys.modules, "flask", None)


def test_filepipe_local_without_the_extra_says_what_to_install(
    without_local_extra: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["local", "up", "--project-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == "`filepipe local` needs `pip install 'filepipe[local]'`\n"
    assert captured.out == ""


def test_the_fixture_without_the_extra_fails_the_test_with_the_same_line(
    without_local_extra: None, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile("def test_it(local_stack):\n    pass\n")

    result = pytester.runpytest_inprocess()

    result.assert_outcomes(errors=1)
    lines = result.stdout.lines
    error = next(number for number, line in enumerate(lines) if "ERROR at setup of test_it" in line)
    # The one line, and nothing else (no traceback) before the summary.
    assert lines[error + 1] == "`filepipe.testing` needs `pip install 'filepipe[local]'`"
    assert "short test summary info" in lines[error + 2]


def test_the_line_names_the_extra_that_pyproject_declares() -> None:
    # The modules checked are the ones the `local` extra installs, by their import names.
    assert needs_local_extra("filepipe local") == "`filepipe local` needs `pip install 'filepipe[local]'`"
    assert set(LOCAL_EXTRA_MODULES) == {
        "moto",
        "flask",
        "aws_lambda_powertools",
        "fastjsonschema",
        "backports.zstd",
    }
