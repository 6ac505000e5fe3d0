"""The bundle's entry point: the `pruning-studio` command (the window without arguments)."""

import multiprocessing
import sys

from studio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # data loaders' worker processes in a frozen app
    sys.exit(main())
