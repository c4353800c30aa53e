"""pyarrow in a layer of its own, for Parquet pipelines only: pruned, sized, built for the right platform."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from filepipe import FileProcessingPipeline, PipelineConfigError, defaults, dependencies
from filepipe.lambda_code import parquet_requirements_file
from tests.components.conftest import RecordingMocks, build, pipeline_args

LAYER = "aws:lambda/layerVersion:LayerVersion"

# --- The layer's contents ------------------------------------------------------------------------------


def test_pyarrow_is_pinned_exactly_in_its_own_requirements():
    lines = [
        line
        for line in parquet_requirements_file().read_text().splitlines()
        if line and not line.startswith("#")
    ]

    assert [line.split("==")[0] for line in lines] == ["pyarrow"]
    assert all("==" in line for line in lines)


@pytest.mark.parametrize(
    ("runtime", "tags"),
    [
        pytest.param("python3.11", ["manylinux2014_x86_64"], id="amazon-linux-2"),
        pytest.param("python3.13", ["manylinux2014_x86_64", "manylinux_2_28_x86_64"], id="amazon-linux-2023"),
    ],
)
def test_a_runtime_on_amazon_linux_2_gets_no_wheel_its_glibc_cannot_load(tmp_path, runtime, tags):
    arguments = dependencies.pip_arguments(tmp_path / "reqs.txt", tmp_path / "out", "x86_64", runtime)

    assert [arguments[i + 1] for i, flag in enumerate(arguments) if flag == "--platform"] == tags


# Read back through ParquetFile, not pq.read_table: read_table's threaded dataset scanner makes pyarrow
# 26 abort at interpreter exit in about one process in four ("terminate called without an active
# exception"), after the work is done.
ROUND_TRIP = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert pa.__file__.startswith(sys.argv[1]), pa.__file__
    table = pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
    for codec in ("snappy", "zstd"):
        path = f"{sys.argv[1]}/out-{codec}.parquet"
        with pq.ParquetWriter(path, table.schema, compression=codec) as writer:
            writer.write_table(table)
        parquet_file = pq.ParquetFile(path)
        assert parquet_file.metadata.row_group(0).column(0).compression == codec.upper()
        back = parquet_file.read()
        assert back.num_rows == 1000 and back.equals(table), codec
    print("ok")
    """
)


# A fresh interpreter (the fast tier starts none): the packaging tier, which also checks what ships.
@pytest.mark.packaging
def test_the_pruned_pyarrow_still_writes_and_reads_parquet(tmp_path):
    # GIVEN a copy of this environment's pyarrow, laid out as a layer's python/ folder
    site = tmp_path / "python"
    spec = importlib.util.find_spec("pyarrow")  # located, not imported: the copy is what runs
    assert spec is not None and spec.origin is not None, "pyarrow is in the dev install (the local extra)"
    installed = Path(spec.origin).parent
    for package in (installed, installed.with_name("pyarrow.libs")):
        if package.is_dir():
            shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    before = dependencies.unzipped_size(site)

    # WHEN it is pruned
    removed = dependencies.prune(site)

    # THEN it is smaller by what was removed, and Parquet round-trips with nothing else on the path
    after = dependencies.unzipped_size(site)
    assert removed > 0 and after == before - removed
    assert not (site / "pyarrow" / "include").exists() and not (site / "pyarrow" / "tests").exists()
    result = subprocess.run(
        [sys.executable, "-S", "-c", ROUND_TRIP, str(site)],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_built_layer_is_pruned(fake_pip):
    def install(arguments: Any) -> None:
        target = Path(arguments[arguments.index("--target") + 1])
        for relative in ("pyarrow/__init__.py", "pyarrow/include/arrow/api.h", "pyarrow/_flight.pyx"):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).write_text("x")

    layer = dependencies.build_layer_dir(parquet_requirements_file(), "arm64", "python3.13", install)

    assert sorted(p.relative_to(layer).as_posix() for p in layer.rglob("*") if p.is_file()) == [
        "python/pyarrow/__init__.py"
    ]


# --- The component --------------------------------------------------------------------------------------


def _writing_parquet(**overrides: Any) -> Callable[[], Any]:
    """A pipeline that writes Parquet."""
    fields = {"input_prefix": "incoming/orders/", "output_format": "parquet", **overrides}
    return lambda: FileProcessingPipeline("orders", pipeline_args(fields))


@pytest.mark.parametrize(
    ("architecture", "runtime", "platform"),
    [
        pytest.param("arm64", "python3.13", "manylinux_2_28_aarch64", id="arm64"),
        pytest.param("x86_64", "python3.12", "manylinux_2_28_x86_64", id="x86_64"),
    ],
)
def test_a_parquet_pipeline_gets_pyarrow_in_a_layer_of_its_own(
    mocks: RecordingMocks, fake_pip, architecture, runtime, platform
):
    build(_writing_parquet(architecture=architecture, python_runtime=runtime))

    parquet = mocks.one(LAYER, "orders-parquet")
    dependencies_layer = mocks.one(LAYER, "orders-dependencies")
    assert parquet.inputs["compatibleArchitectures"] == [architecture]
    assert parquet.inputs["compatibleRuntimes"] == [runtime]
    assert parquet.inputs["layerName"] == "filepipe-test-orders-parquet"
    assert "requirements-parquet.txt" in parquet.inputs["description"]
    layers = mocks.one("aws:lambda/function:Function").inputs["layers"]
    assert layers[1:] == [dependencies_layer.outputs["arn"], parquet.outputs["arn"]]
    (parquet_pip,) = [call for call in fake_pip if str(parquet_requirements_file()) in call]
    assert platform in parquet_pip
    assert parquet_pip[parquet_pip.index("--python-version") + 1] == runtime.removeprefix("python")


def test_a_json_pipeline_gets_no_pyarrow(mocks: RecordingMocks, fake_pip):
    build(lambda: FileProcessingPipeline("orders", pipeline_args({"input_prefix": "incoming/orders/"})))

    assert [layer.name for layer in mocks.of_type(LAYER)] == ["orders-dependencies"]
    assert all(str(parquet_requirements_file()) not in call for call in fake_pip)


def test_without_bundling_a_parquet_pipeline_builds_no_layer(mocks: RecordingMocks, fake_pip):
    mine = "arn:aws:lambda:eu-west-1:111122223333:layer:pyarrow:1"
    build(_writing_parquet(bundle_dependencies=False, extra_layers=[mine]))

    assert mocks.of_type(LAYER) == [] and fake_pip == []
    assert mocks.one("aws:lambda/function:Function").inputs["layers"][1:] == [mine]


def test_code_and_layers_over_lambdas_unzipped_limit_are_refused(mocks: RecordingMocks, monkeypatch):
    def install(arguments: Any) -> None:
        target = Path(arguments[arguments.index("--target") + 1])
        (target / "pyarrow").mkdir(parents=True)
        if any(a.endswith("requirements-parquet.txt") for a in arguments):
            # Sparse: takes no disk, but counts as its apparent size, as it would unzipped.
            with (target / "pyarrow" / "libarrow.so.2600").open("wb") as library:
                library.truncate(defaults.UNZIPPED_CODE_LIMIT_BYTES)

    monkeypatch.setattr(dependencies, "run_pip", install)

    with pytest.raises(PipelineConfigError, match=r"parquet layer 250\.0.*over Lambda's 250 MiB") as error:
        build(_writing_parquet())

    assert "function code" in str(error.value) and "\n" not in str(error.value)
    assert mocks.of_type(LAYER) == [] and mocks.of_type("aws:lambda/function:Function") == []
