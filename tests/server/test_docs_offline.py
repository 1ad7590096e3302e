"""`/docs` works without the internet (issue 14, item 6): the page names no CDN and every
asset it loads is served by this server."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.anyio


async def test_the_docs_page_loads_its_assets_from_the_server(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "cdn.jsdelivr.net" not in html and "https://" not in html
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert any(a.endswith("swagger-ui.css") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 100
    assert "/openapi.json" in html


async def test_only_the_pages_own_assets_are_served(client):
    assert (await client.get("/docs/assets/index.html")).status_code == 404
    assert (await client.get("/docs/assets/..%2Fpyproject.toml")).status_code == 404
