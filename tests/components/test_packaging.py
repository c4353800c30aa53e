"""The wheel works for a consumer: installed in a fresh virtualenv, used from a folder outside the repo,
by a Python program and, as the plugin ``pulumi package add`` installs, by the engine for any language."""

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.provider.engine import Plugin, construct, engine, mock_monitor, run_plugin

# One worker runs the whole module: the wheel is built once (a module fixture), and two builds at once
# from the same source tree collide in its build/ directory.
pytestmark = [pytest.mark.packaging, pytest.mark.xdist_group("packaging")]

REPO = Path(__file__).resolve().parents[2]
CONSUMER_PROJECT = REPO / "examples" / "consumer"
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", ".filepipe", "__pycache__", ".*_cache")
"""What of a working tree is not the project's source (virtualenvs, build output, local state, caches)."""
# A PYTHONPATH pointing at the repo would let pip see the build's egg-info and skip the install.
CLEAN_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

CONSUMER = textwrap.dedent(
    """
    import json, sys, zipfile
    import pulumi
    import filepipe
    from filepipe import FileProcessingPipeline, PipelineArgs
    from filepipe.lambda_code import code_archive

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return args.name + "-id", {**args.inputs, "arn": "arn:aws:sqs:eu-west-1:1:" + args.name,
                                       "url": "https://queue/" + args.name, "name": args.name,
                                       "bucket": args.name}
        def call(self, args):
            return {"region": "eu-west-1", "accountId": "123456789012", "partition": "aws"}, []

    pulumi.runtime.set_mocks(Mocks(), project="consumer", stack="ci", preview=False)
    created = []

    @pulumi.runtime.test
    def program():
        pipeline = FileProcessingPipeline("orders", PipelineArgs(input_prefix="in/", bundle_dependencies=False))
        created.append(pipeline)
        return pipeline.queue.url

    program()
    archive = code_archive()
    print(json.dumps({
        "module": filepipe.__file__,
        "queue": type(created[0].queue).__name__,
        "archive": sorted(archive.assets),
        # What a declaration loaded of the embedded AWS (the `local` extra): it should be nothing.
        "local": sorted(m for m in sys.modules if m.split(".")[0] in {"moto", "flask", "werkzeug"}),
    }))
    """
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    env: Path
    python: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A wheel built from the repo's files, installed in a fresh virtualenv.

    Third-party packages are borrowed read-only from this environment, so the test needs no network;
    this environment's editable filepipe is not visible.
    """
    root = tmp_path_factory.mktemp("packaging")
    dist = root / "dist"
    # Built from a copy of the repo's files: setuptools builds in the source tree (build/, the
    # egg-info), which the editable install and the other tests running meanwhile also use.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(source),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("filepipe-*.whl")
    env = root / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        env=CLEAN_ENV,
    )
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return Installed(wheel, env, python)


def _metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (path,) = [n for n in archive.namelist() if n.endswith(f".dist-info/{name}")]
        return archive.read(path).decode()


def test_wheel_installs_and_runs_a_consumer_program_outside_the_repo(
    installed: Installed, tmp_path: Path
) -> None:
    # GIVEN the wheel: the packages, not the repo's folders
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert "filepipe/handler/app.py" in names and "filepipe/handler/requirements.txt" in names
    assert "filepipe/pipeline.py" in names and "filepipe/testing/plugin.py" in names
    assert "filepipe/plugin.py" in names
    assert not any(
        n.startswith(("tests/", "components/", "testing/", "examples/", "provider/")) for n in names
    )

    # WHEN a consumer program runs from a folder outside the repo
    consumer_dir = tmp_path / "consumer"
    consumer_dir.mkdir()
    (consumer_dir / "program.py").write_text(CONSUMER)
    result = subprocess.run(
        [installed.python, "program.py"],
        cwd=consumer_dir,
        capture_output=True,
        text=True,
        check=False,
        env=CLEAN_ENV,
    )

    # THEN it uses the installed wheel, the Lambda archive contains the handler, and declaring the
    # pipeline loaded nothing of the embedded AWS
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith(str(installed.env)), report["module"]
    assert report["queue"] == "Queue"
    assert "handler/app.py" in report["archive"] and "handler/settings.py" in report["archive"]
    assert not any("__pycache__" in name for name in report["archive"])
    assert report["local"] == []


WITHOUT_LOCAL_EXTRA = textwrap.dedent(
    """
    import runpy, sys
    # As if only `pip install filepipe` were installed: Python refuses to import a module set to None.
    for module in ("moto", "flask", "werkzeug", "aws_lambda_powertools", "fastjsonschema"):
        sys.modules[module] = None
    if sys.argv[1] == "program":
        runpy.run_path("program.py", run_name="__main__")
    else:
        from filepipe.cli.main import main
        sys.exit(main(sys.argv[2:]))
    """
)


def test_without_the_local_extra_programs_and_ops_commands_work_and_local_says_what_to_install(
    installed: Installed, tmp_path: Path
) -> None:
    # GIVEN the installed wheel without the `local` extra's packages
    (tmp_path / "program.py").write_text(CONSUMER)
    (tmp_path / "without_local.py").write_text(WITHOUT_LOCAL_EXTRA)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [installed.python, "without_local.py", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            env=CLEAN_ENV,
        )

    # WHEN a program declares a pipeline, an ops command runs, and `filepipe local up` is asked for
    program = run("program")
    status = run("cli", "status", "--help")
    local = run("cli", "local", "up", "--project-dir", str(tmp_path))

    # THEN the first two work, and the third is one line naming the extra
    assert program.returncode == 0, program.stderr
    assert json.loads(program.stdout.strip().splitlines()[-1])["queue"] == "Queue"
    assert status.returncode == 0, status.stderr
    assert "usage: filepipe status" in status.stdout
    assert (local.returncode, local.stdout) == (2, "")
    assert local.stderr == "`filepipe local` needs `pip install 'filepipe[local]'`\n"


def test_the_embedded_aws_and_the_plugin_are_the_local_extra(installed: Installed) -> None:
    # GIVEN the wheel's metadata
    metadata = Parser().parsestr(_metadata(installed.wheel, "METADATA"))
    requires = metadata.get_all("Requires-Dist") or []
    base = {Requirement(r).name for r in requires if "extra ==" not in r}
    local = {Requirement(r).name for r in requires if 'extra == "local"' in r}

    # THEN a plain install carries the library, the policy rules and the ops commands; `local` the rest
    assert {"pulumi", "pulumi-aws", "boto3", "pulumi-policy", "rich", "pyyaml"} <= base
    assert not base & {"moto", "flask", "aws-lambda-powertools", "fastjsonschema", "pytest"}
    assert {"moto", "aws-lambda-powertools", "fastjsonschema", "backports.zstd", "pytest"} <= local
    assert any(r.startswith("filepipe[local]") and 'extra == "dev"' in r for r in requires)
    # AND pytest finds the plugin through the installed entry point
    assert "[pytest11]\nfilepipe = filepipe.testing.plugin" in _metadata(installed.wheel, "entry_points.txt")


def test_the_consumer_example_passes_its_own_tests_with_the_installed_wheel(
    installed: Installed, tmp_path: Path
) -> None:
    # GIVEN the example project copied outside the repo, as a user has it
    project = tmp_path / "consumer"
    shutil.copytree(CONSUMER_PROJECT, project, ignore=shutil.ignore_patterns(".filepipe", "__pycache__"))

    # WHEN its tests run with the wheel's pytest plugin
    result = subprocess.run(
        [installed.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=CLEAN_ENV,
        timeout=600,
    )

    # THEN they pass, against the installed filepipe
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "\n8 passed" in result.stdout, result.stdout[-2000:]
    plugin = subprocess.run(
        [installed.python, "-c", "import filepipe.testing.plugin as p; print(p.__file__)"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        env=CLEAN_ENV,
    ).stdout.strip()
    assert plugin.startswith(str(installed.env)), plugin


@pytest.fixture
def installed_plugin(installed: Installed, tmp_path: Path) -> Iterator[Plugin]:
    """The plugin folder as ``pulumi package add`` lays it out (its requirements, the wheel, installed in
    the plugin's virtualenv), started by that virtualenv's python outside the repo."""
    folder = tmp_path / "provider"
    folder.mkdir()
    for name in ("__main__.py", "PulumiPlugin.yaml"):
        (folder / name).write_bytes((REPO / "provider" / name).read_bytes())
    with (
        (tmp_path / "plugin-stderr.log").open("wb") as stderr,
        engine() as (engine_address, _),
        run_plugin(installed.python, folder, engine_address, stderr, env=CLEAN_ENV) as running,
    ):
        yield running


def test_the_installed_plugin_constructs_the_components_for_another_language(installed_plugin):
    # WHEN the engine constructs each component through the plugin (as for a TypeScript or YAML program)
    with mock_monitor() as (address, mocks):
        pipeline = construct(
            installed_plugin,
            address,
            "filepipe:index:FileProcessingPipeline",
            "orders",
            {"inputPrefix": "in/", "bundleDependencies": False},
        )
        bucket = construct(
            installed_plugin,
            address,
            "filepipe:index:PipelineBucket",
            "landing",
            {},
        )

    # THEN the wheel's components registered their children and returned their outputs
    queue = next(r for r in mocks.registrations if r.name == "orders-queue")
    assert pipeline["queueUrl"] == queue.outputs["url"]
    assert bucket["bucketName"] and bucket["arn"].startswith("arn:aws:s3:::")
    assert {r.type for r in mocks.registrations} >= {
        "filepipe:index:FileProcessingPipeline",
        "filepipe:index:PipelineBucket",
        "aws:lambda/function:Function",
    }
