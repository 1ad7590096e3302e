"""The OpenAPI page at `/docs` with its JavaScript and CSS served by this server, not a CDN, so
it works on a network with no internet (a field office, an air-gapped install).

The files are swagger-ui's own release, as packaged by `swagger-ui-bundle` (Apache-2.0; its
licence travels with that package); only the three files the page needs are served.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

ASSETS_PATH = "/docs/assets"
#: What the page loads, and the media type each is served with.
FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def assets_dir() -> Path:
    import swagger_ui_bundle  # type: ignore[import-untyped]

    return Path(swagger_ui_bundle.swagger_ui_path)


def install_docs(app: FastAPI) -> None:
    """Replace FastAPI's `/docs` (which loads swagger-ui from a CDN) with one that loads it
    from `/docs/assets/`."""
    docs_url, openapi_url = app.docs_url, app.openapi_url
    if docs_url is None or openapi_url is None:
        return
    directory = assets_dir()

    async def page(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = FILES.get(name)
        if media_type is None:
            return Response(status_code=404)
        return FileResponse(
            directory / name,
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != docs_url]
    app.router.routes.append(Route(docs_url, page, methods=["GET"], include_in_schema=False))
    app.router.routes.append(
        Route(f"{ASSETS_PATH}/{{name}}", asset, methods=["GET"], include_in_schema=False)
    )
