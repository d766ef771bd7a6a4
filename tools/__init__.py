"""The command-line tools (``python tools/<tool>.py``); not part of the installed package."""
