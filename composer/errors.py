"""The one error the composer package raises on purpose."""

from __future__ import annotations

from gleaner.errors import DagError


class CompositionError(DagError):
    """A composition Gleaner cannot run: a domain error (the gateway answers it 400).

    ``where`` names the problem's place when there is one: a JSON path into the
    submitted document (``composition.components[2]``) or a node path in the model.
    """

    def __init__(self, reason: str, *, where: str | None = None) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.where = where
