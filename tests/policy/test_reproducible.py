"""A preview of an unchanged program shows no changes: two runs of the stack program declare the same
resources with the same inputs, even from another checkout folder and another layer cache.

Pulumi compares assets and archives by the hash of their contents (names and bytes, not paths or file
times), so that is what is compared here for them.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pulumi

from filepipe import dependencies
from filepipe.cli.graph import capture_graph
from filepipe.lambda_code import handler_requirements_file
from tests.policy.engine import REPO


def content(value):
    """Inputs with every asset or archive replaced by its members' content hashes."""
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: content(member) for name, member in sorted(value.assets.items())}}
    if isinstance(value, pulumi.FileArchive):
        root = Path(value.path)
        return {
            "archive": {
                path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(root.rglob("*"))
                if path.is_file()
            }
        }
    if isinstance(value, pulumi.FileAsset):
        return hashlib.sha256(Path(value.path).read_bytes()).hexdigest()
    if isinstance(value, pulumi.StringAsset):
        return hashlib.sha256(value.text.encode()).hexdigest()
    if isinstance(value, dict):
        return {key: content(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [content(item) for item in value]
    return value


def declared(graph):
    return {
        node.urn: (
            content(dict(node.inputs)),
            node.parent,
            sorted(node.dependencies),
            {key: sorted(urns) for key, urns in node.property_dependencies.items()},
        )
        for node in graph.nodes
    }


def copy_project(target: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        shutil.copy(REPO / name, target / name)
    shutil.copytree(REPO / "schemas", target / "schemas")
    return target


def test_two_captures_of_the_stack_program_declare_identical_inputs(tmp_path, monkeypatch):
    # GIVEN the stack program captured here, and again from a copy of the project in another folder
    first = declared(capture_graph(REPO, "dev"))
    monkeypatch.setenv(dependencies.CACHE_ENV, str(tmp_path / "another-cache"))
    second = declared(capture_graph(copy_project(tmp_path), "dev"))

    # THEN every resource, input, parent and dependency is the same
    assert first.keys() == second.keys()
    assert first == second


def test_the_code_archive_is_part_of_what_is_compared(dev_graph):
    functions = [node for node in dev_graph.nodes if node.type == "aws:lambda/function:Function"]
    archives = [content(node.inputs["code"])["archive"] for node in functions]

    assert archives and all("handler/app.py" in archive for archive in archives)


def test_the_dependency_layer_has_the_same_contents_whoever_builds_it(tmp_path, monkeypatch):
    # GIVEN two builds of the layer in different caches, by a pip that writes files at different times
    def install(arguments):
        target = Path(arguments[arguments.index("--target") + 1])
        (target / "ijson" / "__pycache__").mkdir(parents=True)
        (target / "ijson" / "__init__.py").write_text("VERSION = '3'\n")
        (target / "ijson" / "__pycache__" / "__init__.cpython-313.pyc").write_bytes(str(tmp_path).encode())

    monkeypatch.setattr(dependencies, "run_pip", install)
    builds = []
    for cache in ("one", "two"):
        monkeypatch.setenv(dependencies.CACHE_ENV, str(tmp_path / cache))
        layer = dependencies.build_layer_dir(handler_requirements_file(), "arm64", "python3.13")
        builds.append(content(pulumi.FileArchive(str(layer))))

    # THEN the archives are identical: bytecode (which embeds build paths and times) is left out
    assert (
        builds[0]
        == builds[1]
        == {"archive": {"python/ijson/__init__.py": builds[0]["archive"]["python/ijson/__init__.py"]}}
    )
