"""The explorer at `/`, driven in headless Chromium as a reader would use it.

Type a search, see the marked snippets and the request behind them, filter by a source
facet, scroll to the second page, open an article, go back; by keyboard alone too, on a
phone-sized screen and in dark mode. Screenshots go to the test's tmp folder and must not
be blank, and axe-core (tests/clients/ts, `npm ci`) must find no serious or critical
accessibility violation.
"""

import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browsers import chromium
from tests.factories import CORPUS_AUTHORS, CORPUS_IDS, corpus_date
from tests.live import LiveServer, serve, wait_for_indexes

AXE = Path(__file__).resolve().parent / "clients/ts/node_modules/axe-core/axe.min.js"
EXPLORER = Path(__file__).resolve().parents[1] / "app" / "explorer"
WAIT_S = 20


@pytest.fixture(scope="module")
def api(seeded_url: str) -> Iterator[LiveServer]:
    with serve(seeded_url) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def wait(browser: webdriver.Chrome, condition: Callable[[webdriver.Chrome], object]) -> Any:
    return WebDriverWait(browser, WAIT_S).until(condition)


def by_id(browser: webdriver.Chrome, element_id: str) -> WebElement:
    return browser.find_element(By.ID, element_id)


def results(browser: webdriver.Chrome) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, "#results > li")


def screenshot(browser: webdriver.Chrome, path: Path) -> None:
    """Save a screenshot and fail if it is one flat colour (a blank or unstyled-white page)."""
    png = browser.get_screenshot_as_png()
    path.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 16, f"{path.name} is blank: {colours}"


def axe_violations(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: npm ci --prefix tests/clients/ts")
    browser.execute_script(AXE.read_text())
    report = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then("
        "  (r) => done(r.violations), (e) => done([{id: 'axe-error', impact: 'critical',"
        "  help: String(e), nodes: []}]));"
    )
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in report
        if v["impact"] in ("serious", "critical")
    ]


def test_explorer_files_are_small_and_self_contained() -> None:
    files = sorted(EXPLORER.iterdir())
    assert [f.name for f in files] == ["explorer.css", "explorer.js", "index.html"]
    assert sum(f.stat().st_size for f in files) < 60_000
    for f in files:
        text = f.read_text()
        assert "http://" not in text
        assert "https://" not in text
        assert "//cdn" not in text


@pytest.mark.anyio
async def test_explorer_is_served_through_the_middleware(api: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        page = await client.get("/", headers={"Accept-Encoding": "gzip"})
        script = await client.get("/explorer/explorer.js", headers={"Accept-Encoding": "gzip"})
        again = await client.get(
            "/explorer/explorer.js", headers={"If-None-Match": script.headers["ETag"]}
        )
        missing = await client.get("/explorer/secrets.txt")
        schema = (await client.get("/openapi.json")).json()
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"].startswith("public")
    assert "<title>Corpus explorer</title>" in page.text
    assert script.headers["content-encoding"] == "gzip"
    assert script.headers["etag"].endswith('-gzip"')
    assert "x-request-id" in script.headers
    assert again.status_code == 304
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert not any(p == "/" or p.startswith("/explorer") for p in schema["paths"])


def test_search_facet_scroll_article_and_back(
    browser: webdriver.Chrome, api: LiveServer, tmp_path: Path
) -> None:
    browser.get(f"{api.url}/")
    wait(browser, lambda b: "121 articles" in by_id(b, "status").text)
    assert len(results(browser)) == 20
    screenshot(browser, tmp_path / "1-home.png")

    by_id(browser, "q").send_keys("body")
    wait(browser, lambda b: "match “body”" in by_id(b, "status").text)
    assert browser.current_url == f"{api.url}/?q=body"
    assert by_id(browser, "status").text == "120 articles match “body”"
    marks = browser.find_elements(By.CSS_SELECTOR, "#results mark")
    assert len(marks) >= 20
    assert {m.text.lower() for m in marks} == {"body"}
    # The last word goes as a prefix (`body*`): search as you type, typos forgiven.
    sent = f"{api.url}/v1/articles?q=body*&typos=auto&limit=20"
    assert by_id(browser, "request-url-text").text == sent
    assert by_id(browser, "request-curl").text == f"curl '{sent}'"
    facets = {
        b.get_attribute("data-source"): b.text.split("\n")
        for b in browser.find_elements(By.CSS_SELECTOR, "#facets button")
    }
    assert facets == {"2": ["Reuters", "40"], "5": ["BBC", "40"], "7": ["Source 7", "40"]}

    browser.find_element(By.CSS_SELECTOR, '#facets button[data-source="5"]').click()
    wait(browser, lambda b: b.current_url.endswith("?q=body&source_id=5"))
    wait(browser, lambda b: by_id(b, "status").text == "40 articles match “body”")
    pressed = browser.find_element(By.CSS_SELECTOR, '#facets button[aria-pressed="true"]')
    assert pressed.get_attribute("data-source") == "5"
    first_page = [li.text for li in results(browser)]
    assert len(first_page) == 20
    assert all(re.search(r"\nBBC( · [^·\n]+){0,2} · 80 words · #\d+", t) for t in first_page)

    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait(browser, lambda b: len(results(b)) == 40)
    wait(browser, lambda b: not by_id(b, "more").is_displayed())
    assert "&cursor=" in by_id(browser, "request-url-text").text
    assert [li.text for li in results(browser)][:20] == first_page
    screenshot(browser, tmp_path / "2-results.png")
    assert axe_violations(browser) == []

    link = results(browser)[25].find_element(By.CSS_SELECTOR, "h3 a")
    title = link.text
    link.click()
    wait(browser, lambda b: by_id(b, "article-title").text == title)
    assert "&article=" in browser.current_url
    assert re.match(r"BBC( · [^·]+){0,2} · 80 words · #\d+", by_id(browser, "article-meta").text)
    assert by_id(browser, "article-body").text.startswith("Body of article ")
    # Similar articles from GET /v1/articles/{id}/similar, never the article itself.
    wait(browser, lambda b: by_id(b, "similar").is_displayed())
    similar = by_id(browser, "similar-list").find_elements(By.CSS_SELECTOR, "a")
    assert similar
    assert all(a.text != title for a in similar)
    assert not by_id(browser, "list-view").is_displayed()
    screenshot(browser, tmp_path / "3-article.png")
    assert axe_violations(browser) == []

    browser.back()
    wait(browser, lambda b: by_id(b, "list-view").is_displayed())
    assert browser.current_url == f"{api.url}/?q=body&source_id=5"
    assert [li.text for li in results(browser)][:20] == first_page
    assert len(results(browser)) == 40  # the pages already loaded stay
    assert by_id(browser, "q").get_attribute("value") == "body"

    browser.back()  # before the facet: all sources again
    wait(browser, lambda b: by_id(b, "status").text == "120 articles match “body”")
    assert browser.find_elements(By.CSS_SELECTOR, '#facets button[aria-pressed="true"]') == []


def test_keyboard_alone_phone_screen_and_dark_mode(api: LiveServer, tmp_path: Path) -> None:
    with chromium(width=390, height=844) as browser:
        browser.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        )
        browser.get(f"{api.url}/")
        wait(browser, lambda b: "121 articles" in by_id(b, "status").text)
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor"
        )
        assert background == "rgb(13, 17, 23)"  # the dark palette
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        ), "the page scrolls sideways on a phone"

        browser.find_element(By.TAG_NAME, "body").send_keys("/")
        assert browser.switch_to.active_element == by_id(browser, "q")
        browser.switch_to.active_element.send_keys("palmyra")
        wait(browser, lambda b: by_id(b, "status").text == "1 article matches “palmyra”")
        for _ in range(30):  # Tab on to the first result, as a keyboard user would
            browser.switch_to.active_element.send_keys(Keys.TAB)
            if browser.switch_to.active_element.get_attribute("data-article"):
                break
        assert browser.switch_to.active_element.get_attribute("data-article") == "166812"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait(browser, lambda b: by_id(b, "article-title").text.startswith("Islamic State"))
        assert "784 words" in by_id(browser, "article-meta").text
        screenshot(browser, tmp_path / "4-phone-dark-article.png")
        assert axe_violations(browser) == []

        browser.back()
        wait(browser, lambda b: by_id(b, "list-view").is_displayed())
        screenshot(browser, tmp_path / "5-phone-dark-results.png")
        assert axe_violations(browser) == []


def test_api_key_is_kept_and_sent_as_bearer(browser: webdriver.Chrome, api: LiveServer) -> None:
    browser.get(f"{api.url}/?q=palmyra")
    wait(browser, lambda b: "palmyra" in by_id(b, "status").text)
    by_id(browser, "key-box").find_element(By.TAG_NAME, "summary").click()
    key = by_id(browser, "api-key")
    key.send_keys("test-key-123", Keys.TAB)
    wait(browser, lambda b: "Authorization: Bearer" in by_id(b, "request-curl").text)
    assert by_id(browser, "request-curl").text.endswith(
        """-H "Authorization: Bearer $CORPUS_API_KEY\""""
    )
    stored = browser.execute_script("return localStorage.getItem('corpus-explorer.api-key')")
    assert stored == "test-key-123"
    # The key goes out on the API's requests: the page's own fetch shows what it sends.
    sent = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const original = window.fetch;"
        "window.fetch = (url, init) => { done(JSON.stringify(init.headers)); "
        "  return original(url, init); };"
        "document.getElementById('sort').value = 'title';"
        "document.getElementById('sort').dispatchEvent(new Event('change'));"
    )
    assert json.loads(sent) == {"Authorization": "Bearer test-key-123"}
    browser.refresh()
    wait(browser, lambda b: by_id(b, "api-key").get_attribute("value") == "test-key-123")


def bars(browser: webdriver.Chrome) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, "#histogram button")


def test_dates_timeline_and_newest_first(
    browser: webdriver.Chrome, api: LiveServer, tmp_path: Path
) -> None:
    dates = {i: corpus_date(n) for n, i in enumerate(CORPUS_IDS)}
    months = Counter(f"{d:%Y-%m}" for d in dates.values() if d is not None)
    browser.get(f"{api.url}/")
    wait(browser, lambda b: "121 articles" in by_id(b, "status").text)
    wait(browser, lambda b: by_id(b, "timeline").is_displayed() and len(bars(b)) == 12)
    labels = [bar.get_attribute("aria-label") for bar in bars(browser)]
    assert labels[2] == f"Mar 2016: {months['2016-03']} articles"
    assert by_id(browser, "timeline-undated").text == "and 13 undated"  # 12 and the seed
    # A result shows its date, byline and a link to where it was published (none undated).
    assert results(browser)[1].find_elements(By.TAG_NAME, "time") == []  # 840 is undated
    item = results(browser)[2]
    dated = dates[835]
    assert dated is not None
    time = item.find_element(By.TAG_NAME, "time")
    assert time.get_attribute("datetime") == dated.isoformat().replace("+00:00", "Z")
    site = item.find_element(By.CSS_SELECTOR, ".meta a")
    assert site.get_attribute("href") == "https://news.example/835"
    assert site.get_attribute("rel") == "noopener noreferrer"
    assert CORPUS_AUTHORS[CORPUS_IDS.index(835) % 3] in item.text

    # Newest first by date: the latest dated article leads, the undated come last.
    Select(by_id(browser, "sort")).select_by_value("-published_at")
    wait(browser, lambda b: b.current_url.endswith("/?sort=-published_at"))
    newest = max((d, i) for i, d in dates.items() if d is not None)
    first = "return document.querySelector('#results > li h3 a')?.dataset.article"
    wait(browser, lambda b: b.execute_script(first) == str(newest[1]))

    # A bar narrows the range to its month; a month shows its days.
    bars(browser)[2].click()
    wait(browser, lambda b: "from=2016-03-01&to=2016-03-31" in b.current_url)
    count = months["2016-03"]
    wait(browser, lambda b: by_id(b, "status").text == f"{count} articles")
    assert (
        "published_from=2016-03-01&published_to=2016-03-31"
        in by_id(browser, "request-url-text").text
    )
    assert by_id(browser, "from").get_attribute("value") == "2016-03-01"
    days = sorted(d.day for d in dates.values() if d and (d.year, d.month) == (2016, 3))
    # A bar a day from the first to the last dated, the empty days between them included.
    wait(browser, lambda b: len(bars(b)) == days[-1] - days[0] + 1)
    shown = [str(bar.get_attribute("aria-label")) for bar in bars(browser)]
    assert shown[0].endswith(": 1 article")
    assert shown[1].endswith(": 0 articles")  # one article every third day
    screenshot(browser, tmp_path / "6-timeline.png")
    assert axe_violations(browser) == []

    # The inputs set the range too; "Any date" clears it.
    browser.execute_script(
        "const to = document.getElementById('to'); to.value = '2016-03-10';"
        "to.dispatchEvent(new Event('change'));"
    )
    wait(browser, lambda b: "to=2016-03-10" in b.current_url)
    march_to_10 = sum(1 for d in dates.values() if d and d.month == 3 and d.day <= 10)
    wait(browser, lambda b: by_id(b, "status").text == f"{march_to_10} articles")
    by_id(browser, "clear-dates").click()
    wait(browser, lambda b: b.current_url.endswith("/?sort=-published_at"))
    wait(browser, lambda b: "121 articles" in by_id(b, "status").text)
    browser.back()
    wait(browser, lambda b: "to=2016-03-10" in b.current_url)
    assert by_id(browser, "to").get_attribute("value") == "2016-03-10"


def test_a_search_that_finds_nothing_offers_did_you_mean(
    browser: webdriver.Chrome, api: LiveServer, tmp_path: Path
) -> None:
    browser.get(f"{api.url}/?q=articel")
    wait(browser, lambda b: by_id(b, "status").text.startswith("No articles found."))
    # Sent as `articel*` (a prefix, which stays exact): nothing; the API's suggestion is
    # `article*`, shown without the star the explorer added.
    assert by_id(browser, "status").text == "No articles found. Did you mean article?"
    assert "q=articel*&typos=auto" in by_id(browser, "request-url-text").text
    link = by_id(browser, "suggestion")
    assert link.get_attribute("href") == f"{api.url}/?q=article"
    screenshot(browser, tmp_path / "did-you-mean.png")
    assert axe_violations(browser) == []

    link.click()
    wait(browser, lambda b: by_id(b, "status").text == "120 articles match “article”")
    assert browser.current_url == f"{api.url}/?q=article"
    assert by_id(browser, "q").get_attribute("value") == "article"
    browser.back()
    wait(browser, lambda b: by_id(b, "status").text.endswith("Did you mean article?"))

    # Typos are forgiven in a word before the last: `articel` finds `article`, marked.
    by_id(browser, "q").clear()
    by_id(browser, "q").send_keys("articel body")
    wait(browser, lambda b: by_id(b, "status").text == "120 articles match “articel body”")
    marks = {m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, "#results mark")}
    assert marks == {"article", "body"}


def test_what_was_typed_before_the_script_ran_is_the_search(
    browser: webdriver.Chrome, api: LiveServer
) -> None:
    # Hold the script back, type, then let it run: as on a slow connection.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/explorer/explorer.js"]})
    browser.get(f"{api.url}/")
    by_id(browser, "q").send_keys("palmyra")
    assert by_id(browser, "status").text == ""  # no script yet: nothing happened
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    browser.execute_script(
        "const s = document.createElement('script');"
        "s.src = '/explorer/explorer.js'; document.head.append(s);"
    )
    wait(browser, lambda b: by_id(b, "status").text == "1 article matches “palmyra”")
    assert by_id(browser, "q").get_attribute("value") == "palmyra"
    assert browser.current_url == f"{api.url}/?q=palmyra"
    assert [li.text.split("\n")[0] for li in results(browser)] == [
        "Islamic State Driven Out Of Syria's Ancient Palmyra City"
    ]


def test_the_mode_switch_finds_an_article_by_meaning(
    browser: webdriver.Chrome, api: LiveServer, tmp_path: Path
) -> None:
    wait_for_indexes(api)
    browser.get(f"{api.url}/?q=jihadists lose desert stronghold")
    # No article holds all four words (they are ANDed): by words, nothing.
    wait(browser, lambda b: by_id(b, "status").text == "No articles found.")
    wait(browser, lambda b: by_id(b, "mode").is_displayed())
    Select(by_id(browser, "mode")).select_by_value("semantic")
    wait(browser, lambda b: "&mode=semantic" in b.current_url)
    wait(browser, lambda b: "nearest in meaning" in by_id(b, "status").text)
    first = "return document.querySelector('#results > li h3 a')?.dataset.article"
    assert browser.execute_script(first) == "166812"  # the Palmyra article
    assert "mode=semantic" in by_id(browser, "request-url-text").text
    assert not by_id(browser, "sort").is_enabled()  # meaning is the order
    # Marked where a word matched (the Palmyra article has two of them), nothing else.
    marks = {m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, "#results mark")}
    assert marks == {"desert", "strongholds"}
    screenshot(browser, tmp_path / "7-by-meaning.png")
    assert axe_violations(browser) == []

    Select(by_id(browser, "mode")).select_by_value("hybrid")
    wait(browser, lambda b: "&mode=hybrid" in b.current_url)
    wait(browser, lambda b: "mode=hybrid" in by_id(b, "request-url-text").text)
    wait(browser, lambda b: b.execute_script(first) == "166812")

    def open_first(b: webdriver.Chrome) -> bool:
        try:  # the list may be replaced under us as the hybrid page lands
            results(b)[0].find_element(By.CSS_SELECTOR, "h3 a").click()
        except StaleElementReferenceException:
            return False
        return True

    wait(browser, open_first)
    wait(browser, lambda b: by_id(b, "article-title").text.startswith("Islamic State"))
    wait(browser, lambda b: by_id(b, "similar").is_displayed())
    Select(by_id(browser, "mode")).select_by_value("")
    wait(browser, lambda b: "mode=" not in b.current_url)
