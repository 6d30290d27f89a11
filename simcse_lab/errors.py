"""User-facing errors: one line, naming the file, the line and the problem; exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2


class InputError(UserError):
    """Malformed input at a known place: ``path:line: problem``."""

    def __init__(self, path, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


def first_line(err: BaseException, limit: int | None = 300) -> str:
    """The first line of an exception's message (at most ``limit`` characters), else its class name: what a
    one-line error quotes of a library's multi-line exception."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else err.__class__.__name__
