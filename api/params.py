"""Path parameters, with the shapes the routes can tell apart.

A path parameter is percent-decoded before routing, so an id holding "/" would reach
another route: ids are declared without "/" (nor control characters), and a custom_id
(which may hold "/") with the
characters the request rules allow. (A custom_id cannot end in "/events": that path is
the events route's, registered first.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query

from api.schemas import CUSTOM_ID_CHARACTERS, ID_PATTERN

BatchId = Annotated[str, Path(min_length=1, pattern=ID_PATTERN, description="A batch's id.")]
FileId = Annotated[str, Path(min_length=1, pattern=ID_PATTERN, description="A file's id.")]
WebhookId = Annotated[
    str, Path(min_length=1, pattern=ID_PATTERN, description="A webhook endpoint's id.")
]
After = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, description="The last id of the page before (cursor paging)."),
]
# A Redis stream entry id, as the events carry them.
LastEventId = Annotated[
    str | None, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$")
]
CustomId = Annotated[
    str,
    Path(min_length=1, pattern=CUSTOM_ID_CHARACTERS, description="A request's custom_id."),
]
