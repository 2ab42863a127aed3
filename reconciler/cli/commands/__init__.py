"""One module per command: its parser, its run, its outcome and exit code."""
