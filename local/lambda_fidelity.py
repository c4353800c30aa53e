"""Lambda behaviour of moto (5.2) that differs from the service, corrected so the endpoint answers as AWS.

The local runtime creates each function and event source mapping on the endpoint, so that any
process can read and operate them with the Lambda API, while it runs the functions itself (moto would
run them in Docker). Where moto differs:

- an SQS mapping is run by moto itself: ``Queue.add_message`` receives the new message and invokes
  the function (in Docker) for every enabled mapping registered on the queue. Every mapping is
  detached from its queue as it is created, so only the local runner (or nothing) polls;
- ``State`` flips to ``Enabled`` / ``Disabled`` at once. Lambda reports ``Disabling`` until its pollers
  have stopped, ``Enabling`` / ``Updating`` until they run as configured. A mapping whose runner is
  :func:`attach` ed reports the runner's acknowledged state, and an update reaches the runner before
  the call returns (:class:`MappingFollower`);
- ``ListEventSourceMappings(FunctionName=...)`` matches only the exact string the mapping was created
  with; Lambda matches a function's name, ARN or partial ARN;
- ``LoggingConfig`` is dropped; Lambda stores and returns it (defaults: ``Text``, ``/aws/lambda/<name>``);
- ``ScalingConfig.MaximumConcurrency`` outside 2..1000 is accepted.

:func:`apply` patches moto in place for the whole process (its backends are process-global) and only
brings it closer to Lambda. The local endpoint calls it when it starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from filepipe.local.esm import MAX_MAXIMUM_CONCURRENCY, MIN_MAXIMUM_CONCURRENCY
from filepipe.local.lambda_logs import default_log_group


class MappingFollower(Protocol):
    """What runs a mapping locally: told of every change of the mapping, asked for its state."""

    def follow(self, enabled: bool, maximum_concurrency: int | None) -> None:
        """The mapping's configuration changed; called inside the endpoint's request, so it must not
        call the endpoint (it would wait for itself)."""

    @property
    def state(self) -> str:
        """``Enabled``, ``Enabling``, ``Updating``, ``Disabling`` or ``Disabled``."""


_apply_lock = threading.Lock()
_applied: list[bool] = []
_followers_lock = threading.Lock()
_followers: dict[tuple[str, str, str], MappingFollower] = {}
"""By ``(account, region, UUID)``."""


def apply() -> None:
    """Patch moto's Lambda (mappings, states, listing, logging config) to behave as Lambda; idempotent."""
    with _apply_lock:
        if _applied:
            return
        _patch_mappings()
        _patch_logging_config()
        _applied.append(True)


def attach(account_id: str, region: str, uuid: str, follower: MappingFollower) -> None:
    """From now on the mapping ``uuid`` is run by ``follower``: its updates reach it, it reports the state."""
    with _followers_lock:
        _followers[(account_id, region, uuid)] = follower


def detach(account_id: str, region: str, uuid: str) -> None:
    with _followers_lock:
        _followers.pop((account_id, region, uuid), None)


def _follower(esm: Any) -> MappingFollower | None:
    with _followers_lock:
        return _followers.get((esm.account_id, esm.region, esm.uuid))


def maximum_concurrency(scaling_config: Mapping[str, Any] | None) -> int | None:
    value = (scaling_config or {}).get("MaximumConcurrency")
    return None if value is None else int(value)


def rekey_event_source_mapping(account_id: str, region: str, current: str, wanted: str) -> None:
    """Give the mapping ``current`` the UUID ``wanted`` (moto draws its own; the stack's outputs carry
    the one the capture assigned). Only while nothing else uses the endpoint: during the stack's apply."""
    from moto.awslambda.models import lambda_backends
    from moto.awslambda.utils import make_event_source_mapping_arn

    backend = lambda_backends[account_id][region]
    mappings: dict[str, Any] = backend._event_source_mappings
    if wanted in mappings:
        raise ValueError(f"an event source mapping {wanted} already exists")
    esm = mappings.pop(current)
    esm.uuid = wanted
    esm.arn = make_event_source_mapping_arn(region, account_id, wanted)
    mappings[wanted] = esm


def _invalid(message: str) -> Exception:
    from moto.awslambda.exceptions import InvalidParameterValueException

    return InvalidParameterValueException(message)


def _check_scaling(spec: Mapping[str, Any]) -> None:
    concurrency = maximum_concurrency(spec.get("ScalingConfig"))
    if concurrency is not None and not MIN_MAXIMUM_CONCURRENCY <= concurrency <= MAX_MAXIMUM_CONCURRENCY:
        raise _invalid(
            f"ScalingConfig.MaximumConcurrency must be between {MIN_MAXIMUM_CONCURRENCY} and "
            f"{MAX_MAXIMUM_CONCURRENCY}, got {concurrency}"
        )


def _function_name(reference: str) -> str:
    """The function's name in a name, ARN or partial ARN (``[arn:aws:lambda:region:account:function:]name[:qualifier]``)."""
    parts = reference.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[0]


def _detach_from_queue(backend: Any, esm: Any) -> None:
    from moto.sqs.models import sqs_backends

    function_arn = esm.function_arn
    for queue in sqs_backends[backend.account_id][backend.region_name].queues.values():
        if queue.lambda_event_source_mappings.get(function_arn) is esm:
            del queue.lambda_event_source_mappings[function_arn]


def _patch_mappings() -> None:
    from moto.awslambda.models import EventSourceMapping, LambdaBackend

    original_create: Callable[..., Any] = LambdaBackend.create_event_source_mapping
    original_update: Callable[..., Any] = LambdaBackend.update_event_source_mapping
    original_delete: Callable[..., Any] = LambdaBackend.delete_event_source_mapping
    original_configuration: Callable[..., dict[str, Any]] = EventSourceMapping.get_configuration

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        _check_scaling(spec)
        esm = original_create(self, spec)
        _detach_from_queue(self, esm)
        return esm

    def update_event_source_mapping(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        _check_scaling(spec)
        esm = original_update(self, uuid, spec)
        follower = _follower(esm) if esm is not None else None
        if follower is not None:
            follower.follow(bool(esm.enabled), maximum_concurrency(esm.scaling_config))
        return esm

    def delete_event_source_mapping(self: Any, uuid: str) -> Any:
        esm = original_delete(self, uuid)
        follower = _follower(esm) if esm is not None else None
        if follower is not None:
            # A deleted mapping polls no more: the runner stops receiving, as Lambda's pollers do.
            follower.follow(False, maximum_concurrency(esm.scaling_config))
            detach(esm.account_id, esm.region, esm.uuid)
        return esm

    def list_event_source_mappings(self: Any, event_source_arn: str, function_name: str) -> Iterable[Any]:
        mappings = list(self._event_source_mappings.values())
        if event_source_arn:
            mappings = [esm for esm in mappings if esm.event_source_arn == event_source_arn]
        if function_name:
            name = _function_name(function_name)
            mappings = [esm for esm in mappings if _function_name(esm.function_arn) == name]
        return mappings

    def get_configuration(self: Any) -> dict[str, Any]:
        configuration = original_configuration(self)
        follower = _follower(self)
        if follower is not None:
            configuration["State"] = follower.state
        return configuration

    setattr(LambdaBackend, "create_event_source_mapping", create_event_source_mapping)  # noqa: B010 - moto's methods, replaced on purpose
    setattr(LambdaBackend, "update_event_source_mapping", update_event_source_mapping)  # noqa: B010
    setattr(LambdaBackend, "delete_event_source_mapping", delete_event_source_mapping)  # noqa: B010
    setattr(LambdaBackend, "list_event_source_mappings", list_event_source_mappings)  # noqa: B010
    setattr(EventSourceMapping, "get_configuration", get_configuration)  # noqa: B010


def logging_config(given: Mapping[str, Any] | None, function_name: str) -> dict[str, Any]:
    """A function's ``LoggingConfig`` as Lambda reports it: the given fields over Lambda's defaults."""
    config: dict[str, Any] = {
        "LogFormat": "Text",
        "LogGroup": default_log_group(function_name),
        **(given or {}),
    }
    if config["LogFormat"] == "JSON":
        config.setdefault("ApplicationLogLevel", "INFO")
        config.setdefault("SystemLogLevel", "INFO")
    return config


def _patch_logging_config() -> None:
    from moto.awslambda.models import LambdaFunction

    original_init: Callable[..., None] = LambdaFunction.__init__
    original_configuration: Callable[..., dict[str, Any]] = LambdaFunction.get_configuration
    original_update: Callable[..., dict[str, Any]] = LambdaFunction.update_configuration

    def init(self: Any, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        original_init(self, account_id, spec, *args, **kwargs)
        self.logging_config = logging_config(spec.get("LoggingConfig"), self.function_name)

    def get_configuration(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        configuration = original_configuration(self, *args, **kwargs)
        configuration["LoggingConfig"] = dict(self.logging_config)
        return configuration

    def update_configuration(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
        if "LoggingConfig" in config_updates:
            self.logging_config = logging_config(
                {**self.logging_config, **config_updates["LoggingConfig"]}, self.function_name
            )
        return original_update(self, config_updates)

    setattr(LambdaFunction, "__init__", init)  # noqa: B010 - moto's methods, replaced on purpose
    setattr(LambdaFunction, "get_configuration", get_configuration)  # noqa: B010
    setattr(LambdaFunction, "update_configuration", update_configuration)  # noqa: B010
