"""A real browser calls the API from another origin: CORS, exposed headers, ETag revalidation.

Headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium) opens a page
served from a second loopback origin. The page fetches a list, reads `Link`, `ETag` and
`X-Request-ID`, revalidates with `If-None-Match`, and renders the titles; a page from an
origin the API does not allow is refused by the browser itself.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browsers import chromium
from tests.live import LiveServer, serve

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>corpus</title>
<p id="status">loading</p>
<p id="link"></p><p id="etag"></p><p id="rid"></p><p id="revalidated"></p>
<ul id="titles"></ul>
<script type="module">
const api = new URLSearchParams(location.search).get("api");
const show = (id, text) => { document.getElementById(id).textContent = text; };
try {
  const response = await fetch(`${api}/v1/articles?limit=5`, {
    headers: { "X-Request-ID": "browser-page-1" },
  });
  const page = await response.json();
  for (const item of page.items) {
    const li = document.createElement("li");
    li.textContent = item.title;
    document.getElementById("titles").append(li);
  }
  const etag = response.headers.get("ETag");
  show("link", response.headers.get("Link") ?? "no Link");
  show("etag", etag ?? "no ETag");
  show("rid", response.headers.get("X-Request-ID") ?? "no id");
  const again = await fetch(`${api}/v1/articles?limit=5`, { headers: { "If-None-Match": etag } });
  show("revalidated", String(again.status));
  show("status", "done");
} catch (error) {
  show("status", `blocked: ${error}`);
}
</script>
"""


@contextmanager
def page_origin(directory: Path) -> Iterator[str]:
    """A static file server on its own loopback port: a second origin."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def open_page(browser: webdriver.Chrome, origin: str, api: LiveServer) -> str:
    browser.get(f"{origin}/index.html?api={api.url}")
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "status").text != "loading")
    return str(browser.find_element(By.ID, "status").text)


def test_allowed_origin_reads_the_api_and_disallowed_is_refused(
    browser: webdriver.Chrome, seeded_url: str, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text(PAGE)
    cors = {"CORS_ALLOW_ORIGINS": "{allowed},http://x.invalid"}
    with page_origin(tmp_path) as allowed, page_origin(tmp_path) as other:
        cors["CORS_ALLOW_ORIGINS"] = cors["CORS_ALLOW_ORIGINS"].format(allowed=allowed)
        with serve(seeded_url, env=cors) as api:
            assert open_page(browser, allowed, api) == "done"
            titles = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#titles li")]
            assert titles[0].startswith("Islamic State Driven Out")
            assert titles[1:] == ["Title 119", "Title 118", "Title 117", "Title 116"]
            assert browser.find_element(By.ID, "link").text.startswith("</v1/articles?")
            assert 'rel="next"' in browser.find_element(By.ID, "link").text
            assert browser.find_element(By.ID, "etag").text.startswith('"')
            assert browser.find_element(By.ID, "rid").text == "browser-page-1"
            assert browser.find_element(By.ID, "revalidated").text == "304"

            status = open_page(browser, other, api)
            assert status.startswith("blocked: TypeError")
            assert browser.find_elements(By.CSS_SELECTOR, "#titles li") == []
