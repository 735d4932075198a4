"""The one exception type whose message is shown to users as a single line."""


class FastStyleError(Exception):
    """A problem the user can fix; its message names the file or option and the fix.

    Entry points print ``error: <message>`` and exit with status 2 instead of a traceback.
    """


class CheckpointError(FastStyleError):
    """A model file that cannot be read as what it claims to be."""


def first_line(exc: BaseException, *, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when it has none), at most ``limit`` chars."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
