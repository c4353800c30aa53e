"""The filepipe components as one Pulumi package, for every Pulumi language.

``provider/`` (a Pulumi plugin folder) starts :func:`host`; ``pulumi package add`` reads the schema the
plugin serves and generates an SDK from it. :func:`schema` is the same schema without starting a server:
the tests validate it and compare it with the committed snapshot ``provider/schema.json``.
"""

import importlib.metadata
import json
from typing import Any, Final

import pulumi
from pulumi.provider.experimental import component_provider_host
from pulumi.provider.experimental.component import ComponentProvider

from .bucket import PipelineBucket
from .group import PipelineGroup
from .pipeline import FileProcessingPipeline

PACKAGE: Final = "filepipe"
"""The package name: type tokens are ``filepipe:index:<Component>``."""
COMPONENTS: Final[tuple[type[pulumi.ComponentResource], ...]] = (
    FileProcessingPipeline,
    PipelineGroup,
    PipelineBucket,
)
"""The components the package offers."""


def version() -> str:
    """The package's version: filepipe's own, so an SDK generated from a tag names that release."""
    return importlib.metadata.version("filepipe")


def schema() -> dict[str, Any]:
    """The package schema that Pulumi's analyzer infers from the components' annotations."""
    provider = ComponentProvider(list(COMPONENTS), PACKAGE, None, version())
    document: dict[str, Any] = json.loads(provider.schema or "{}")
    return document


def host() -> None:
    """Serve the components as a provider plugin (the engine or a language host starts it)."""
    component_provider_host(list(COMPONENTS), PACKAGE, version=version())


if __name__ == "__main__":
    # `python -m filepipe.plugin > provider/schema.json` refreshes the snapshot.
    print(json.dumps(schema(), indent=2, sort_keys=True))
