"""filepipe.cli: the ``filepipe`` command (``main.py`` dispatches; one module per command group)."""
