"""What a deployed pipeline's handler runs with: its function's ``FILEPIPE_*`` environment, read by the
handler's own parser (:meth:`~filepipe.handler.settings.HandlerSettings.from_env`).

The stack outputs name a pipeline's resources, not its settings (compression, size cap, processor): the
function's environment is where the component writes them and the only place the handler reads them, so
the ops commands judge a pipeline by that, never by a second copy of the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from filepipe.cli.ops.stack import OpsError, Pipeline, Stack
from filepipe.handler.settings import HandlerSettings, SettingsError


def environment_of(configuration: Mapping[str, Any]) -> dict[str, str]:
    """The environment variables of a ``GetFunctionConfiguration`` answer (none: an empty mapping)."""
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    return {str(name): str(value) for name, value in variables.items()}


def settings_of(configuration: Mapping[str, Any]) -> HandlerSettings:
    """The handler's settings from a function configuration; raises :class:`SettingsError` as the handler
    would at its start (a function whose environment does not parse processes nothing)."""
    return HandlerSettings.from_env(environment_of(configuration))


def deployed_settings(stack: Stack, pipeline: Pipeline) -> HandlerSettings:
    """The settings ``pipeline``'s function runs with; every way this fails is one :class:`OpsError` line."""
    name = pipeline.function_name
    try:
        configuration = stack.lambda_().get_function_configuration(FunctionName=name)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in {"AccessDenied", "AccessDeniedException"}:
            raise OpsError(
                f"cannot read the settings of pipeline {pipeline.name}: lambda:GetFunctionConfiguration on "
                f"{name} was denied (files are checked against the function's own settings before sending)"
            ) from None
        if code == "ResourceNotFoundException":
            raise OpsError(
                f"pipeline {pipeline.name}: its function {name} does not exist; deploy the stack again (pulumi up)"
            ) from None
        raise
    try:
        return settings_of(configuration)
    except SettingsError as error:
        raise OpsError(
            f"pipeline {pipeline.name}: its function's settings do not parse ({error}), so it processes "
            f"nothing; see `filepipe doctor {pipeline.name}`"
        ) from None
