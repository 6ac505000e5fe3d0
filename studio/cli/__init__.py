"""``pruning-studio``: the command line. Every command calls the verbs of
``studio.core.verbs``; heavy imports happen inside commands so ``--help`` is instant. Errors
print one line with a non-zero exit; ``--debug`` (anywhere on the line) shows the
traceback."""

from __future__ import annotations

import logging
import sys

# How the command line words the remedies core errors name (studio.core.errors.FIXES).
FIX_WORDS = {
    "arch": "give the architecture with --arch NAME (resnet18, timm:NAME or FILE.py:NAME)",
    "trust": "pass --trust only if you trust its source",
    "input_size": "set --input-size C,H,W (or C,L for a Conv1d model)",
    "data": "give --data SOURCE",
    "code_root": "pass --code-root DIR",
    "weights": "or give the file with --weights FILE",
}


def message(e: BaseException) -> tuple[str, int]:
    """(one line for the user, exit code) for an exception that ended a command."""
    from studio.core.errors import StudioError

    if isinstance(e, StudioError):
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if e.fix in FIX_WORDS:
            msg += f" -- {FIX_WORDS[e.fix]}"
        return msg, 2
    if isinstance(e, MemoryError):
        return (
            "out of memory: the model or batch is too large for this machine (try a "
            "smaller --input-size or --batch-size)"
        ), 1
    if isinstance(e, RecursionError):
        return "the model is nested too deeply to trace", 1
    if isinstance(e, OSError):
        from studio.core.io import os_error

        return str(os_error(e, getattr(e, "filename", None) or "a file", "use")), 2
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (
        f"internal error ({type(e).__name__}{': ' + text[:200] if text else ''}); please "
        f"report it with the output of --debug"
    ), 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] == "gui":  # the window; its own parser
        from studio.gui.app import main as gui_main

        return gui_main(argv[1:])
    debug = "--debug" in argv
    argv = [x for x in argv if x != "--debug"]
    from studio.cli.parser import build_parser

    ap = build_parser()
    a = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        import warnings

        warnings.filterwarnings("ignore")  # library deprecation chatter is not for users
    if a.command is None:
        ap.print_help()
        return 0
    from studio.cli.commands import COMMANDS

    try:
        return COMMANDS[a.command](a)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except BaseException as e:  # noqa: BLE001 - one line for the user, traceback with --debug
        if debug or isinstance(e, SystemExit):
            raise
        text, code = message(e)
        print(f"error: {text}", file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
