"""Errors raised by the component library."""


class PipelineConfigError(ValueError):
    """A pipeline's inputs are invalid; raised at construction, before anything is deployed.

    The message names the offending field and says how to fix it.
    """
