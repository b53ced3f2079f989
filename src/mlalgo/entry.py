"""The ``mlalgo`` command. ``mlalgo live`` goes straight to the light live CLI, before the main
app (which imports the research stack) is loaded."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "live":
        from mlalgo.live.cli import main as live

        sys.exit(live(sys.argv[2:]))
    from mlalgo.cli import app

    app(prog_name="mlalgo")


if __name__ == "__main__":
    main()
