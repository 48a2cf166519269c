"""Path parameters, with the shapes the routes can tell apart.

A path parameter is percent-decoded before routing, so an id holding "/" would reach
another route: ids are declared without "/", and a custom_id (which may hold "/") with the
characters the request rules allow. (A custom_id cannot end in "/events": that path is
the events route's, registered first.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from api.schemas import CUSTOM_ID_CHARACTERS

_SEGMENT = r"^[^/]+$"

BatchId = Annotated[str, Path(min_length=1, pattern=_SEGMENT, description="A batch's id.")]
FileId = Annotated[str, Path(min_length=1, pattern=_SEGMENT, description="A file's id.")]
CustomId = Annotated[
    str,
    Path(min_length=1, pattern=CUSTOM_ID_CHARACTERS, description="A request's custom_id."),
]
