"""The command line (``reconciler``): argv -> a pipeline -> output and an exit code."""

from reconciler.cli.main import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, EXIT_REFUSED, main

__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "main"]
