"""Run one bad-input case through the real command line (in-process, to keep the corpus
fast) and classify what happened.

Every case runs in its own folder that also holds the user's own files (``victim/``,
``user.json``, ``user.html``, ``user.onnx``): afterwards each of them must be unchanged.

Outcomes: ``refused`` (one line, non-zero exit, the expected words), ``vague`` (refused,
but not with the expected words), ``internal`` (an internal error message), ``traceback``,
``silent`` (exit 0: a wrong success), ``code_run`` (the planted marker appeared),
``data_lost`` (a file the studio did not write was removed or changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import yaml

from tests.reliability.builders import MARKER, build

CORPUS = Path(__file__).with_name("corpus.yaml")
OUTCOMES = ("refused", "vague", "internal", "traceback", "silent", "code_run", "data_lost")
USER_FILES = {
    "victim/": "victim",
    "user.json": {"text": '{"mine": true}\n'},
    "user.html": {"text": "<html>mine</html>\n"},
    "user.onnx": {"text": "not really onnx, but mine\n"},
}


def cases() -> list[dict]:
    out = []
    for family, items in yaml.safe_load(CORPUS.read_text()).items():
        for c in items:
            out.append(dict(c, family=family))
    return out


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(case: dict, tmp: Path) -> dict:
    """Build the case's files beside the user's, run its command line, classify."""
    from studio.cli import main

    tmp.mkdir(parents=True, exist_ok=True)
    build(tmp, USER_FILES)
    build(tmp, case.get("files"))
    before = _tree(tmp)
    argv = [
        a.replace("{tmp}", str(tmp)).replace("{marker}", str(tmp / MARKER)) for a in case["argv"]
    ]
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)  # relative outputs land in the case's folder
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 2
            except BaseException as e:  # noqa: BLE001 - anything escaping main is a bug
                import traceback

                traceback.print_exc()
                code = f"raised {type(e).__name__}"
    finally:
        os.chdir(cwd)
    stderr = err.getvalue()
    after = _tree(tmp)
    lost = [p for p, h in before.items() if after.get(p) != h]
    lines = [x for x in stderr.strip().splitlines() if x.strip()]
    if (tmp / MARKER).exists():
        outcome = "code_run"
    elif lost:
        outcome = "data_lost"
    elif "Traceback" in stderr:
        outcome = "traceback"
    elif code == 0:
        outcome = "silent"
    elif "internal error" in stderr:
        outcome = "internal"
    elif (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and case["expect"].lower() in lines[0].lower()
    ):
        outcome = "refused"
    else:
        outcome = "vague"
    return {
        "id": case["id"],
        "family": case["family"],
        "outcome": outcome,
        "code": code,
        "message": lines[-1] if lines else "",
        "lost": lost,
    }
