"""One exception family for everything a user can get wrong.

The CLI prints ``str(error)`` as one line and exits non-zero; library callers catch
:class:`TrackdbError`. Each message names the file, frame or id that is wrong.
"""


class TrackdbError(Exception):
    """Base class: bad input or a store state that refuses the request."""


class InputError(TrackdbError):
    """A file, folder or array given by the user is missing, malformed or inconsistent."""


class NotFoundError(TrackdbError):
    """An experiment, movie, solution, node or run id/name that does not exist."""


class SchemaError(TrackdbError):
    """The database is at another schema revision than this trackdb expects."""


class ConnectionFailed(TrackdbError):
    """The database URL cannot be connected to."""


class SolveFailed(TrackdbError):
    """A solve ended infeasible, timed out without a solution, or crashed; its run is marked failed."""


class ConflictError(TrackdbError):
    """An edit made on a solution that is no longer the movie's current one (another editor's
    re-solve replaced it): reload the current solution, check the edit still makes sense, and
    retry it naming ``current_solution_id``."""

    def __init__(self, message: str, current_solution_id: int | None = None) -> None:
        super().__init__(message)
        self.current_solution_id = current_solution_id
