"""The dependency layer build: platform-aware pip arguments, cached, failures explained."""

import pytest

from filepipe import dependencies
from filepipe.lambda_code import handler_requirements_file


@pytest.mark.parametrize(
    ("architecture", "platform"),
    [
        pytest.param("arm64", "manylinux2014_aarch64", id="arm64"),
        pytest.param("x86_64", "manylinux2014_x86_64", id="x86_64"),
    ],
)
def test_pip_installs_binary_wheels_for_the_functions_platform(tmp_path, architecture, platform):
    arguments = dependencies.pip_arguments(
        tmp_path / "reqs.txt", tmp_path / "out", architecture, "python3.12"
    )

    assert arguments[arguments.index("--platform") + 1] == platform
    assert arguments[arguments.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in arguments
    assert arguments[arguments.index("--target") + 1] == str(tmp_path / "out")


def test_the_layer_is_built_once_then_served_from_the_cache(fake_pip):
    requirements = handler_requirements_file()

    first = dependencies.build_layer_dir(requirements, "arm64", "python3.13")
    second = dependencies.build_layer_dir(requirements, "arm64", "python3.13")
    other_arch = dependencies.build_layer_dir(requirements, "x86_64", "python3.13")

    assert first == second != other_arch
    assert (first / "python" / "msgspec" / "__init__.py").is_file()
    assert len(fake_pip) == 2  # arm64 once, x86_64 once


def test_a_failed_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setenv(dependencies.CACHE_ENV, str(tmp_path))

    def offline(arguments):
        raise dependencies.DependencyBuildError("no network")

    monkeypatch.setattr(dependencies, "run_pip", offline)

    with pytest.raises(dependencies.DependencyBuildError):
        dependencies.build_layer_dir(handler_requirements_file(), "arm64", "python3.13")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_handler_requirements_are_pinned_exactly():
    lines = [
        line
        for line in handler_requirements_file().read_text().splitlines()
        if line and not line.startswith("#")
    ]

    assert lines and all("==" in line for line in lines)
