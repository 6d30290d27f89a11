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
