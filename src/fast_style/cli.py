"""What entry points share: user errors become one line on stderr and exit status 2.

Every entry point is one decorated function::

    @entry(config_name="export", schema=ExportConfig)
    def main(cfg): ...

    if __name__ == "__main__":
        main()

:func:`entry` registers the schemas (:func:`fast_style.config.register_schemas`), wraps
the function in ``hydra.main(version_base="1.3")`` with the ``configs`` folder beside the
script, runs its body under :func:`report_user_errors`, and, called, goes through
:func:`run`. ``run(main, schema)`` runs a ``@hydra.main`` function so that:

- a bad command line (unknown key, a value of the wrong type, a parse error, a missing
  config group option) is one ``error:`` line and exit 2, not Hydra's multi-line
  report (set ``HYDRA_FULL_ERROR=1`` to get Hydra's full traceback instead);
- SIGTERM (``timeout``, SLURM, ``kill``) unwinds like Ctrl-C, so temporary files and
  tile caches are removed by the code that made them; the exit status is 143
  (train.py keeps Lightning's handling: it saves ``last.ckpt`` and exits 143);
- Ctrl-C is one ``interrupted`` line and exit 130.

Exit statuses: 0 success, 1 some inputs failed (stylize), 2 a user error, 130 Ctrl-C,
143 SIGTERM.

:func:`style_list_overrides` lets ``train.py style=[a,b]`` mean several styles (Hydra
would merge the two style configs into one node, the last one winning silently).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from fast_style.errors import FastStyleError, first_line

USER_ERROR = 2
INTERRUPTED = 128 + signal.SIGINT
TERMINATED = 128 + signal.SIGTERM


@contextlib.contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn :class:`FastStyleError` and missing config values into ``error: ...`` + exit 2."""
    try:
        yield
    except FastStyleError as exc:
        _fail(str(exc))
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or "a value"
        _fail(f"{key} must be set; pass it on the command line, e.g. {key}=...")


def _fail(message: str, status: int = USER_ERROR) -> None:
    logging.getLogger("fast_style").debug("user error", exc_info=True)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def print_summary(summary, *, seconds: float) -> None:
    """The end of a stylize run: each skipped file (stderr), then ``done N, skipped N, failed N``."""
    for path, why in summary.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    print(summary.line(seconds), flush=True)


def style_list_overrides(args: list[str]) -> list[str]:
    """train.py's command line with every ``style=[a,b,...]`` (a list of style options, or
    a sweep of lists ``style=[a,b],[c,d]``) written as ``style=multi styles=[a,b,...]``,
    and ``style=multi`` added to a ``styles=...`` given without any ``style=``.

    Hydra reads a list of options of one config group as "merge them all into one node",
    where the last one wins without a word; ``styles`` (:class:`fast_style.config.TrainConfig`)
    is the list of styles of one network, and ``configs/style/multi.yaml`` names it.
    Everything else is passed on unchanged."""
    out: list[str] = []
    for arg in args:
        if arg.startswith("style=["):
            out += ["style=multi", "styles=" + arg.removeprefix("style=")]
        else:
            out.append(arg)
    if any(a.startswith("styles=") for a in out) and not any(a.startswith("style=") for a in out):
        out.insert(0, "style=multi")
    return out


def style_alias(argv: list[str]) -> list[str]:
    """stylize.py's and live.py's ``argv`` with each ``style=X`` written ``styles=X`` (Hydra
    would read a bare ``style`` as train.py's config group). Outside ``-m``, a bare mix
    (``style=a:0.7,b:0.3``, its quotes eaten by the shell) is quoted for Hydra, which
    would otherwise refuse the comma as a sweep; lists ``[a,b]`` are left as they are."""
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("style", "styles"):
            bare = "," in value and not set(value) & set("'\"[]{}()")
            arg = f"styles='{value}'" if bare and not multirun else f"styles={value}"
        out.append(arg)
    return out


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM, so ``finally`` blocks and context managers run."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise Terminated(TERMINATED)


def config_error_line(exc: BaseException, *, schema: type | None = None) -> str:
    """One line for a Hydra / OmegaConf composition error: the override that failed and why,
    with a close known key when the key is misspelt."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    head, why = first_line(exc), first_line(cause) if cause is not None else ""
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    if key and "not in" in why and schema is not None and "." not in str(key):
        known = [f.name for f in dataclasses.fields(schema)]
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
        return f"{key}: no such option; {hint} (python {os.path.basename(sys.argv[0])} --cfg job lists every option)"
    text = f"{head.rstrip('.')}: {why}" if why and why not in head else head
    options = getattr(exc, "options", None)  # MissingConfigException: the group's choices
    if options:
        text = f"{text}; choose one of: {', '.join(sorted(options))}"
    return f"{text} (python {os.path.basename(sys.argv[0])} --cfg job lists every option)"


def run(main: Callable[[], None], *, schema: type | None = None, sigterm: bool = True) -> None:
    """Call a ``@hydra.main`` function with the behaviour in the module docstring.

    ``sigterm=False`` leaves SIGTERM to the command (train.py: Lightning saves
    ``last.ckpt`` on it and the run exits 143 by itself)."""
    from hydra.errors import HydraException

    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"  # as Hydra reads it
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us instead of Hydra's printer
    if sigterm:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        main()
    except KeyboardInterrupt:
        _fail("interrupted (Ctrl-C); outputs already written are complete, nothing half-written was left", INTERRUPTED)
    except (HydraException, OmegaConfBaseException) as exc:
        if full_error:
            raise
        _fail(config_error_line(exc, schema=schema))


def config_dir_beside(script: str | os.PathLike) -> Path:
    """The ``configs`` folder of the checkout that holds ``script``: the first folder named
    ``configs`` in the script's folder or above it (train.py: ``./configs``; scripts/x.py: ``../configs``)."""
    for folder in Path(script).resolve().parents:
        if (folder / "configs").is_dir():
            return folder / "configs"
    raise FileNotFoundError(f"no configs folder beside or above {script}")


def entry(*, config_name: str, schema: type | None = None, sigterm: bool = True,
          argv: Callable[[list[str]], list[str]] | None = None) -> Callable[[Callable], Callable[[], None]]:
    """Decorate an entry point's ``main(cfg)``: the schemas registered, ``hydra.main`` over
    ``configs/<config_name>.yaml``, the body under :func:`report_user_errors`; calling the
    result runs it through :func:`run` (one-line errors, exit codes 2, 130, 143).

    ``schema``: the command's schema (:data:`fast_style.config.COMMANDS`), whose keys a
    misspelt one is compared with; ``sigterm=False`` leaves SIGTERM to the command (train.py:
    Lightning saves ``last.ckpt``); ``argv``: rewrites ``sys.argv[1:]`` before Hydra reads it
    (train.py's ``style=[a,b]``, stylize.py's ``style=``). The decorated function stays
    reachable as ``.hydra_main`` (Hydra's) and ``.__wrapped__`` (the plain body)."""
    from fast_style.config import register_schemas

    register_schemas()

    def decorate(body: Callable) -> Callable[[], None]:
        import hydra

        @functools.wraps(body)  # Hydra unwraps __wrapped__: the job is named after the script
        def task(cfg):  # the body's value reaches Hydra (train.py's objective, for a sweeper)
            with report_user_errors():
                return body(cfg)

        code = getattr(body, "__code__", None)
        hydra_main = hydra.main(version_base="1.3", config_path=str(config_dir_beside(code.co_filename)),
                                config_name=config_name)(task)

        @functools.wraps(body)
        def main() -> None:
            if argv is not None:
                sys.argv[1:] = argv(sys.argv[1:])
            run(hydra_main, schema=schema, sigterm=sigterm)

        main.hydra_main = hydra_main
        return main

    return decorate
