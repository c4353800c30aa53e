"""The wheel works for a consumer: installed in a fresh virtualenv, used from a folder outside the repo,
by a Python program and, as the plugin ``pulumi package add`` installs, by the engine for any language."""

import os
import site
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provider.engine import Plugin, construct, engine, mock_monitor, run_plugin

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
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
    }))
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from the repo's files."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        env=CLEAN_ENV,
    )
    (built,) = dist.glob("filepipe-*.whl")
    return built


@pytest.fixture(scope="module")
def consumer_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv with the wheel installed (third-party packages borrowed read-only
    from this environment, so the test needs no network; this environment's editable filepipe is not
    visible)."""
    env = tmp_path_factory.mktemp("consumer") / "venv"
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
    return python


def test_the_wheel_holds_the_handler_and_the_library_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "filepipe/handler/app.py" in names and "filepipe/handler/requirements.txt" in names
    assert "filepipe/pipeline.py" in names and "filepipe/plugin.py" in names
    assert not any(n.startswith(("tests/", "components/", "provider/")) for n in names)


def test_wheel_installs_and_runs_a_consumer_program_outside_the_repo(consumer_python, tmp_path):
    # WHEN a consumer program runs from a folder outside the repo
    consumer_dir = tmp_path / "consumer"
    consumer_dir.mkdir()
    (consumer_dir / "program.py").write_text(CONSUMER)
    result = subprocess.run(
        [consumer_python, "program.py"],
        cwd=consumer_dir,
        capture_output=True,
        text=True,
        check=False,
        env=CLEAN_ENV,
    )

    # THEN it uses the installed wheel and the Lambda archive contains the handler
    assert result.returncode == 0, result.stderr
    report = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith(str(consumer_python.parents[1])), report["module"]
    assert report["queue"] == "Queue"
    assert "handler/app.py" in report["archive"] and "handler/settings.py" in report["archive"]
    assert not any("__pycache__" in name for name in report["archive"])


@pytest.fixture
def installed_plugin(consumer_python: Path, tmp_path: Path) -> Iterator[Plugin]:
    """The plugin folder as ``pulumi package add`` lays it out (its requirements, the wheel, installed in
    the plugin's virtualenv), started by that virtualenv's python outside the repo."""
    folder = tmp_path / "provider"
    folder.mkdir()
    for name in ("__main__.py", "PulumiPlugin.yaml"):
        (folder / name).write_bytes((REPO / "provider" / name).read_bytes())
    with (
        (tmp_path / "plugin-stderr.log").open("wb") as stderr,
        engine() as (engine_address, _),
        run_plugin(consumer_python, folder, engine_address, stderr, env=CLEAN_ENV) as running,
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
