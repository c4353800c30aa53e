"""Lambda layers of third-party packages, built reproducibly and cached.

One builder for every layer the component creates; a requirements file is its input (the handler's
``requirements.txt`` for every pipeline, ``requirements-parquet.txt`` for pipelines that write Parquet).
pip installs the pinned requirements as binary wheels for the function's platform (manylinux, arm64 or
x86_64) and Python version, whatever the machine running Pulumi is, so no Docker is needed. What the
handler never loads is then pruned (:data:`PRUNED`). The result is cached under a key of every input
(requirements, architecture, runtime, platform tags, prune rules), so repeated ``pulumi preview``/``up``
runs reuse it without network and the archive hash (hence the layer) changes only when an input does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

PLATFORMS = {
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
}
"""The wheel platform tags pip may install per architecture, most compatible first (pip prefers them in
this order). manylinux2014 needs glibc 2.17, manylinux_2_28 glibc 2.28."""
AMAZON_LINUX_2_RUNTIMES = frozenset({"python3.11"})
"""Runtimes Lambda runs on Amazon Linux 2, whose glibc is 2.26: a manylinux_2_28 wheel's extensions fail to
load there, so these get the manylinux2014 tags only (the later runtimes run on Amazon Linux 2023, glibc
2.34, which loads both)."""
CACHE_ENV = "FILEPIPE_CACHE_DIR"

PRUNED: tuple[tuple[str, str], ...] = (
    # (glob under the layer's python/ folder, why the handler never needs what it matches)
    ("pyarrow/include", "C++ headers, for compiling extensions against Arrow"),
    ("pyarrow/src", "C++ sources of the Python bindings, for the same"),
    ("pyarrow/includes", "Cython declarations, for the same"),
    ("pyarrow/**/*.pxd", "Cython declarations, for the same"),
    ("pyarrow/**/*.pyx", "Cython sources of the compiled modules beside them"),
    ("pyarrow/**/*.pxi", "Cython sources included by those"),
    ("pyarrow/tests", "pyarrow's own test suite and its data"),
    ("pyarrow/_pyarrow_cpp_tests.*", "the C++ side of that test suite"),
    ("pyarrow/libarrow_flight.so*", "Arrow Flight, a gRPC service framework: the handler serves nothing"),
    ("pyarrow/libarrow_python_flight.so*", "Flight's Python bindings"),
    ("pyarrow/_flight.*", "Flight's Python bindings"),
    ("pyarrow/flight.py", "Flight's Python bindings"),
    ("pyarrow/libarrow_s3.so*", "pyarrow's own S3 client: the handler moves bytes through boto3 and "
     "pyarrow.fs imports S3 support only if present"),
    ("pyarrow/_s3fs.*", "the bindings of that client"),
    ("pyarrow/libarrow*.so", "an unversioned copy of a library, for linking at build time: the compiled "
     "modules load libarrow*.so.<major> (a wheel holds no symlinks, so each name is a full copy)"),
    ("pyarrow/libarrow*.so.*.*.*", "the same library under its full version, for the same"),
)  # fmt: skip
"""What is removed from a built layer. Only pyarrow has anything to prune; ``pyarrow.parquet`` writing and
reading (Snappy, zstd) works without it (``tests/components/test_parquet_layer.py`` imports and round-trips
a pruned copy). Kept on purpose: ``libarrow_substrait``, ``libarrow_acero`` and ``libarrow_dataset``, which
pyarrow's core module links against, and the small optional modules (CSV, JSON, ORC, other filesystems),
about 1.5 MB together."""

Installer = Callable[[Sequence[str]], None]


class DependencyBuildError(RuntimeError):
    """pip could not produce the layer (offline, or no wheel for the platform)."""


def run_pip(arguments: Sequence[str]) -> None:
    command = [sys.executable, "-m", "pip", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DependencyBuildError(
            f"building the dependency layer failed ({' '.join(command)}):\n{result.stderr.strip()}\n"
            "Fix the network/requirements, or set bundle_dependencies=False and provide extra_layers."
        )


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "filepipe" / "layers"


def platforms(architecture: str, runtime: str) -> tuple[str, ...]:
    """The wheel platform tags whose extensions load on ``runtime`` on ``architecture``."""
    tags = PLATFORMS[architecture]
    if runtime in AMAZON_LINUX_2_RUNTIMES:
        return tuple(tag for tag in tags if tag.startswith("manylinux2014_"))
    return tags


def pip_arguments(requirements: Path, target: Path, architecture: str, runtime: str) -> list[str]:
    python_version = runtime.removeprefix("python")
    platform_flags = [
        flag for platform in platforms(architecture, runtime) for flag in ("--platform", platform)
    ]
    return [
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        *platform_flags,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--requirement",
        str(requirements),
    ]


def cache_key(requirements: Path, architecture: str, runtime: str) -> str:
    digest = hashlib.sha256()
    parts = (
        requirements.read_bytes(),
        architecture.encode(),
        runtime.encode(),
        " ".join(platforms(architecture, runtime)).encode(),
        " ".join(pattern for pattern, _ in PRUNED).encode(),
    )
    for part in parts:
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def prune(site_dir: Path) -> int:
    """Remove what :data:`PRUNED` matches under ``site_dir`` (a layer's ``python/``); the bytes removed."""
    removed = 0
    for pattern, _why in PRUNED:
        for path in sorted(site_dir.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                removed += unzipped_size(path)
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                removed += path.lstat().st_size
                path.unlink()
    return removed


def unzipped_size(directory: Path) -> int:
    """Bytes the files under ``directory`` take unzipped, as Lambda counts a layer against its limit."""
    return sum(path.lstat().st_size for path in directory.rglob("*") if path.is_file() or path.is_symlink())


def build_layer_dir(
    requirements: Path, architecture: str, runtime: str, installer: Installer | None = None
) -> Path:
    """Return a directory laid out as a Python layer (``python/<packages>``), building it if needed.

    ``requirements`` is the layer's pinned requirements file; the layer holds them and their dependencies,
    pruned (:func:`prune`)."""
    if architecture not in PLATFORMS:
        raise ValueError(f"unknown architecture {architecture!r}; use one of {', '.join(PLATFORMS)}")
    final = cache_root() / f"{runtime}-{architecture}-{cache_key(requirements, architecture, runtime)}"
    if (final / "python").is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the final location and rename: a half-built layer is never mistaken for a cached one.
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        try:
            (installer or run_pip)(pip_arguments(requirements, staging / "python", architecture, runtime))
        except DependencyBuildError as error:
            if runtime not in AMAZON_LINUX_2_RUNTIMES:
                raise
            raise DependencyBuildError(
                f"{error}\n{runtime} runs on Amazon Linux 2 (glibc 2.26), which loads manylinux2014 wheels "
                f"only: a requirement of {requirements.name} may publish newer ones only; use a later "
                "python_runtime."
            ) from error
        for cache in (staging / "python").rglob("__pycache__"):
            shutil.rmtree(cache)
        prune(staging / "python")
        staging.rename(final)
    except OSError:
        if not (final / "python").is_dir():  # another process won the race: theirs is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
