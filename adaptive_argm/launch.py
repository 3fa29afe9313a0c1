"""The command-line program's entry point. It loads the commands (numpy, scipy, pedalboard,
torch: a second or two) inside a guard, so that Ctrl-C while they load ends as quietly as
Ctrl-C during a command: one line, exit 130, nothing written."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .cli import main as run_commands
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was written\n")
        raise SystemExit(130) from None
    run_commands()
