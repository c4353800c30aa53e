"""A Lambda layer with the handler's third-party packages, built reproducibly and cached.

pip installs the pinned requirements as binary wheels for the function's platform (manylinux, arm64 or
x86_64) and Python version, whatever the machine running Pulumi is. The result is cached under a key of
(requirements, architecture, runtime), so repeated ``pulumi preview``/``up`` runs reuse it without network
and the archive hash (hence the layer) changes only when an input does.
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
CACHE_ENV = "FILEPIPE_CACHE_DIR"

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


def pip_arguments(requirements: Path, target: Path, architecture: str, runtime: str) -> list[str]:
    python_version = runtime.removeprefix("python")
    platform_flags = [flag for platform in PLATFORMS[architecture] for flag in ("--platform", platform)]
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
    for part in (requirements.read_bytes(), architecture.encode(), runtime.encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def build_layer_dir(
    requirements: Path, architecture: str, runtime: str, installer: Installer | None = None
) -> Path:
    """Return a directory laid out as a Python layer (``python/<packages>``), building it if needed."""
    if architecture not in PLATFORMS:
        raise ValueError(f"unknown architecture {architecture!r}; use one of {', '.join(PLATFORMS)}")
    final = cache_root() / f"{runtime}-{architecture}-{cache_key(requirements, architecture, runtime)}"
    if (final / "python").is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the final location and rename: a half-built layer is never mistaken for a cached one.
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        (installer or run_pip)(pip_arguments(requirements, staging / "python", architecture, runtime))
        for cache in (staging / "python").rglob("__pycache__"):
            shutil.rmtree(cache)
        staging.rename(final)
    except OSError:
        if not (final / "python").is_dir():  # another process won the race: theirs is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
