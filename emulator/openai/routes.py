"""The ``/v1`` router: auth, the model listing, validation, then ``emulator.openai.serving``.

Refusals: 401 when the emulator has an ``--api-key`` and the call lacks ``Authorization:
Bearer KEY``; 400 naming the field (``error.param``); 404 ``model_not_found`` for a model
not served; 413 for a body over 1 MiB; 404 for an unknown path, 405 for a wrong method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.config import EmulatorSettings
from emulator.faults import FaultBook
from emulator.openai.calls import Call
from emulator.openai.chat import parse_chat
from emulator.openai.completions import parse_completion
from emulator.openai.embeddings import parse_embeddings
from emulator.openai.errors import OpenAIError, error_body
from emulator.openai.responses_input import parse_response
from emulator.openai.serving import Serving
from emulator.pacing import Receive, Send
from emulator.responses import send_json
from emulator.stats import Stats
from emulator.wire import BodyTooLarge

# Models listed as created at one fixed time, so the listing never changes.
MODEL_CREATED = 1_700_000_000
_GENERATING: dict[str, Callable[[Any, tuple[str, ...]], Call]] = {
    "/v1/chat/completions": parse_chat,
    "/v1/completions": parse_completion,
    "/v1/responses": parse_response,
}
_POSTS = {*_GENERATING, "/v1/embeddings"}


def _body_problem(problem: Exception) -> OpenAIError:
    if isinstance(problem, BodyTooLarge):
        return OpenAIError(
            f"The request body is too large: {problem}.", None, "body_too_large", 413
        )
    return OpenAIError(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        f"using your HTTP library correctly.) {problem}",
    )


class OpenAIRoutes:
    """Serves ``/v1`` for the emulator's settings, stats and fault book."""

    def __init__(self, settings: EmulatorSettings, stats: Stats, book: FaultBook) -> None:
        self.served = settings.openai_models
        self.stats = stats
        self.serving = Serving(settings, stats, book)
        self.models = {
            m: {
                "id": m,
                "object": "model",
                "created": MODEL_CREATED,
                "owned_by": "aivbatch-emulator",
            }
            for m in settings.openai_models
        }
        self.auth = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    async def _refuse(self, send: Send, exc: OpenAIError) -> None:
        self.stats.reject("openai")
        await send_json(send, exc.status, exc.body())

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        data: Any,
        problem: Exception | None,
    ) -> None:
        """Serve one ``/v1`` request whose body decoded to ``data`` (or failed: ``problem``)."""
        path, method = scope["path"], scope["method"]
        if self.auth is not None:
            given = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if given != self.auth:
                message = (
                    "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
                    if given is None
                    else "Incorrect API key provided."
                )
                await self._refuse(send, OpenAIError(message, None, "invalid_api_key", 401))
                return
        if path == "/v1/models" or path.startswith("/v1/models/"):
            await self._models(path, method, send)
        elif path not in _POSTS:
            body = error_body(f"Invalid URL ({method} {path})", "invalid_request_error")
            await send_json(send, 404, body)
        elif method != "POST":
            body = error_body(f"{path} takes POST only", "invalid_request_error")
            await send_json(send, 405, body, [(b"allow", b"POST")])
        elif problem is not None:
            await self._refuse(send, _body_problem(problem))
        else:
            await self._call(path, receive, send, data)

    async def _models(self, path: str, method: str, send: Send) -> None:
        if method != "GET":
            body = error_body(f"{path} takes GET only", "invalid_request_error")
            await send_json(send, 405, body, [(b"allow", b"GET")])
        elif path == "/v1/models":
            await send_json(send, 200, {"object": "list", "data": list(self.models.values())})
        elif (found := self.models.get(path.removeprefix("/v1/models/"))) is not None:
            await send_json(send, 200, found)
        else:
            model = path.removeprefix("/v1/models/")
            message = f"The model `{model}` does not exist or you do not have access to it."
            await send_json(send, 404, OpenAIError(message, "model", "model_not_found").body())

    async def _call(self, path: str, receive: Receive, send: Send, data: Any) -> None:
        try:
            if path == "/v1/embeddings":
                answering = self.serving.embeddings(
                    parse_embeddings(data, self.served), receive, send
                )
            else:
                answering = self.serving.generate(
                    _GENERATING[path](data, self.served), receive, send
                )
        except OpenAIError as exc:
            await self._refuse(send, exc)
            return
        await answering
