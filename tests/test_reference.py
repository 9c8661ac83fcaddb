"""The API reference at /docs works on a host without internet: Swagger UI's files come
from this server, under the explorer's Content-Security-Policy, in headless Chromium."""

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from app.api.explorer import CONTENT_SECURITY_POLICY
from tests.browsers import chromium
from tests.factories import make_client
from tests.live import LiveServer, serve

WAIT_S = 20


@pytest.fixture(scope="module")
def api(seeded_url: str) -> Iterator[LiveServer]:
    with serve(seeded_url) as server:
        yield server


@pytest.mark.anyio
async def test_the_page_and_its_files_come_from_this_server(seeded_url: str) -> None:
    async with make_client(seeded_url) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "//" not in page.text  # no scheme-relative or absolute address at all
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) == 4
        for asset in assets:
            response = await client.get(f"/{asset}")
            assert response.status_code == 200, asset
            assert len(response.content) > 100
        assert (await client.get("/docs/secrets.txt")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404
        assert (await client.get("/docs/oauth2-redirect")).status_code == 404


def test_swagger_ui_renders_every_operation_with_no_console_error(api: LiveServer) -> None:
    operations = len(httpx.get(f"{api.url}/openapi.json").json()["paths"])
    with chromium() as browser:
        browser.get(f"{api.url}/docs")
        deadline = time.monotonic() + WAIT_S
        shown: list[WebElement] = []
        while time.monotonic() < deadline and len(shown) < operations:
            shown = browser.find_elements(By.CSS_SELECTOR, ".opblock")
            time.sleep(0.1)
        assert len(shown) == operations
        # A CSP violation or a failed load is a SEVERE entry here.
        assert browser.get_log("browser") == []  # type: ignore[no-untyped-call]
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        assert loaded
        assert all(url.startswith(api.url) for url in loaded), loaded
