"""The dashboard's pages under /ui, and the service's front page at /.

The pages hold no data: their scripts read it from the same authenticated API routes any
client uses, with the key the user pasted (kept in the browser's sessionStorage), so the
API alone decides what a tenant may see. The templates only need to know whether a key is
required and which optional routes this server has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import ServicesDep
from models.errors import NotFound

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"
STATIC = HERE / "static"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


def _page(request: Request, services: ServicesDep, name: str, **extra: Any) -> HTMLResponse:
    context = {
        "auth": services.settings.auth_enabled,
        "static": STATIC_URL,
        "page": name,
        **extra,
    }
    return templates.TemplateResponse(request, f"{name}.html", context)


@router.get("/", response_class=HTMLResponse)
def front(request: Request, services: ServicesDep) -> HTMLResponse:
    """Where the dashboard and the API's documents are."""
    return _page(request, services, "front")


@router.get("/ui", response_class=HTMLResponse)
def batches(request: Request, services: ServicesDep) -> HTMLResponse:
    """The batches list."""
    return _page(request, services, "batches")


@router.get("/ui/signin", response_class=HTMLResponse)
def signin(request: Request, services: ServicesDep) -> HTMLResponse:
    """Paste an API key."""
    return _page(request, services, "signin")


@router.get("/ui/submit", response_class=HTMLResponse)
def submit(request: Request, services: ServicesDep) -> HTMLResponse:
    """Upload an input file and start a batch."""
    return _page(request, services, "submit")


@router.get("/ui/batches/{batch_id}", response_class=HTMLResponse)
def batch(batch_id: str, request: Request, services: ServicesDep) -> HTMLResponse:
    """One batch, live."""
    return _page(request, services, "batch", batch_id=batch_id)


@router.get(STATIC_URL + "/{name}")
def asset(name: str) -> FileResponse:
    """A script, the stylesheet or the icon (a route rather than a mount: every route of
    the app is then one the contract tests can see, and the name cannot leave the folder,
    since a path parameter holds no "/")."""
    path = STATIC / name
    if name.startswith(".") or not path.is_file():
        raise NotFound(f"no asset {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix))


def install(app: FastAPI) -> None:
    """Serve the pages and their assets (shipped in the package: no build step, no CDN)."""
    app.include_router(router)
