"""The filepipe components as one Pulumi package, for every Pulumi language.

``provider/`` (a Pulumi plugin folder) starts :func:`host`; ``pulumi package add`` reads the schema the
plugin serves and generates an SDK from it. :func:`schema` is the same schema without starting a server:
the tests validate it and compare it with the committed snapshot ``provider/schema.json``.
"""

import importlib.metadata
import json
import re
import sys
from typing import Any, Final

import pulumi
from pulumi.errors import InputPropertiesError
from pulumi.provider import ConstructResult, main
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import ComponentInitError

from .bucket import PipelineBucket
from .errors import PipelineConfigError
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


_FIELD = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)=")
"""The field a :class:`PipelineConfigError` is about: its messages name it first, as ``name=value``."""


def property_path(message: str) -> str:
    """The schema's name of the field ``message`` is about (``circuitBreaker.probeConcurrency`` for
    ``circuit_breaker.probe_concurrency=0 ...``); empty if it names none."""
    found = _FIELD.search(message)
    if found is None:
        return ""
    return ".".join(
        head + "".join(word.title() for word in rest)
        for head, *rest in (segment.split("_") for segment in found.group(1).split("."))
    )


class FilepipeProvider(ComponentProvider):
    """The SDK's component provider, with one difference: an input the components refuse (a value out of
    range, a prefix that overlaps another, ...) is reported as the engine reports any bad input,
    ``INVALID_ARGUMENT`` naming the field, rather than as a failure of the construction. (The SDK wraps
    every error raised in a component's constructor; only its own input mapping reports bad inputs.)"""

    def construct(
        self,
        name: str,
        resource_type: str,
        inputs: pulumi.Inputs,
        options: pulumi.ResourceOptions | None = None,
    ) -> ConstructResult:
        try:
            return super().construct(name, resource_type, inputs, options)
        except ComponentInitError as failed:
            refused = failed.inner
            if not isinstance(refused, PipelineConfigError):
                raise
            reason = str(refused)
            raise InputPropertiesError(
                reason, [{"property_path": property_path(reason), "reason": reason}]
            ) from refused


def version() -> str:
    """The package's version: filepipe's own, so an SDK generated from a tag names that release."""
    return importlib.metadata.version("filepipe")


def schema() -> dict[str, Any]:
    """The package schema that Pulumi's analyzer infers from the components' annotations."""
    provider = FilepipeProvider(list(COMPONENTS), PACKAGE, None, version())
    document: dict[str, Any] = json.loads(provider.schema or "{}")
    return document


def host() -> None:
    """Serve the components as a provider plugin (the engine or a language host starts it, with the
    plugin's folder and the engine's address as arguments): what the SDK's ``component_provider_host``
    does, with :class:`FilepipeProvider`."""
    main(FilepipeProvider(list(COMPONENTS), PACKAGE, None, version()), sys.argv[1:])


if __name__ == "__main__":
    # `python -m filepipe.plugin > provider/schema.json` refreshes the snapshot.
    print(json.dumps(schema(), indent=2, sort_keys=True))
