// The corpus explorer: a client of the public API, same-origin, no dependencies.
// The URL holds the state (q, mode, source_id, sort, from, to, article), so a search can be shared
// and the back button works; every list shows the exact request it made.
"use strict";

const PAGE_SIZE = 20;
const DEBOUNCE_MS = 250;
const KEY_STORAGE = "corpus-explorer.api-key";
const $ = (id) => document.getElementById(id);

const sourceNames = new Map(); // source_id -> name (or null)
let listController = null; // aborts the list request that a newer one replaces
let articleController = null;
let nextUrl = null;
let loadingMore = false;
let shownListKey = null; // the list state the rendered results belong to
let debounceTimer = 0;
let pageKey = ""; // the key when this browser's storage is off
let corpusHasDates = false; // date controls and the timeline show only when it does
let meaningOn = false; // the mode switch shows only when the server searches by meaning
const MODES = new Set(["semantic", "hybrid"]);
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const DAY_MS = 86400000;

// -- State <-> URL ------------------------------------------------------------------------

function readState() {
  const params = new URLSearchParams(location.search);
  return {
    q: params.get("q") || "",
    mode: MODES.has(params.get("mode")) ? params.get("mode") : "",
    sources: params.getAll("source_id").filter((s) => /^[1-9][0-9]*$/.test(s)),
    sort: params.get("sort") || "",
    from: DAY.test(params.get("from") || "") ? params.get("from") : "",
    to: DAY.test(params.get("to") || "") ? params.get("to") : "",
    article: params.get("article") || "",
  };
}

function stateUrl(state) {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.mode) params.set("mode", state.mode);
  for (const id of state.sources) params.append("source_id", id);
  if (state.sort) params.set("sort", state.sort);
  if (state.from) params.set("from", state.from);
  if (state.to) params.set("to", state.to);
  if (state.article) params.set("article", state.article);
  const query = params.toString();
  return query ? `/?${query}` : "/";
}

function go(state, { replace = false } = {}) {
  const url = stateUrl(state);
  if (url !== location.pathname + location.search) {
    history[replace ? "replaceState" : "pushState"](null, "", url);
  }
  render();
}

// -- Requests -----------------------------------------------------------------------------

function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || pageKey;
  } catch {
    return pageKey;
  }
}

function headers() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function getJson(path, signal) {
  const response = await fetch(path, { headers: headers(), signal });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body?.detail || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// Search as you type: the last word also matches as a prefix (`palm*` finds palmyra).
const asTyped = (q) => (/[\p{L}\p{N}]$/u.test(q) ? `${q}*` : q);

// The list's filters as API parameters: the search (forgiving typos), the date range, and
// the sources unless `withSources` is off (the source facet counts every source of the other
// filters).
function filterParams(state, withSources = true) {
  const params = new URLSearchParams();
  if (state.q) {
    params.set("q", asTyped(state.q));
    params.set("typos", "auto");
  }
  if (byMeaning(state)) params.set("mode", state.mode);
  if (withSources) for (const id of state.sources) params.append("source_id", id);
  if (state.from) params.set("published_from", state.from);
  if (state.to) params.set("published_to", state.to);
  return params;
}

// A search by meaning ranks by meaning: it takes no other order.
const byMeaning = (state) => Boolean(state.q && state.mode && meaningOn);

function listPath(state) {
  const params = filterParams(state);
  if (state.sort && !byMeaning(state)) params.set("sort", state.sort);
  params.set("limit", String(PAGE_SIZE));
  return `/v1/articles?${params}`;
}

function countsPath(params, facet) {
  params.set("facet", facet);
  params.set("count", "exact");
  params.set("limit", "1");
  params.set("fields", "article_id");
  return `/v1/articles?${params}`;
}

const facetPath = (state) => countsPath(filterParams(state, false), "source_id");
const timelinePath = (state, unit) => countsPath(filterParams(state), `published_at:${unit}`);

function showRequest(path) {
  const url = new URL(path, location.origin).href;
  $("request-url").href = url;
  $("request-url-text").textContent = url;
  const auth = apiKey() ? ` -H "Authorization: Bearer $CORPUS_API_KEY"` : "";
  $("request-curl").textContent = `curl '${url.replaceAll("'", "'\\''")}'${auth}`;
}

// -- The list -----------------------------------------------------------------------------

function sourceLabel(id) {
  const name = sourceNames.get(Number(id));
  return name ? name : `Source ${id}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });

// "Source · date · author · N words · #id": the date as a <time>, and a link to where the
// article was published when its url is a web address.
function metaLine(element, item) {
  const parts = [sourceLabel(item.source_id)];
  if (item.published_at) {
    const time = document.createElement("time");
    time.dateTime = item.published_at;
    time.textContent = dateFormat.format(new Date(item.published_at));
    parts.push(time);
  }
  if (item.author) parts.push(item.author);
  parts.push(`${item.word_count.toLocaleString()} words`, `#${item.article_id}`);
  const site = webAddress(item.url);
  if (site) {
    const link = document.createElement("a");
    link.href = site.href;
    link.rel = "noopener noreferrer";
    link.textContent = `${site.hostname} ↗`;
    parts.push(link);
  }
  element.replaceChildren();
  parts.forEach((part, i) => element.append(...(i ? [" · ", part] : [part])));
}

function webAddress(url) {
  try {
    const parsed = new URL(url);
    return /^https?:$/.test(parsed.protocol) ? parsed : null;
  } catch {
    return null;
  }
}

function resultItem(item, searching) {
  const li = document.createElement("li");
  const h3 = document.createElement("h3");
  const link = document.createElement("a");
  link.href = stateUrl({ ...readState(), article: String(item.article_id) });
  link.dataset.article = String(item.article_id);
  link.textContent = item.title;
  h3.append(link);
  const meta = document.createElement("p");
  meta.className = "meta";
  metaLine(meta, item);
  const text = document.createElement("p");
  text.className = "text";
  if (searching && typeof item.snippet === "string") {
    text.innerHTML = item.snippet; // the API escapes all but its <mark> tags
  } else {
    text.textContent = item.excerpt ?? "";
  }
  li.append(h3, meta, text);
  return li;
}

function appendPage(page, state) {
  const list = $("results");
  for (const item of page.items) list.append(resultItem(item, Boolean(state.q)));
  nextUrl = page.next;
  $("more").hidden = !nextUrl;
}

function renderFacets(facets, state) {
  const list = $("facets");
  list.replaceChildren();
  for (const { value, count } of facets) {
    const id = String(value);
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.source = id;
    button.setAttribute("aria-pressed", String(state.sources.includes(id)));
    const name = document.createElement("span");
    name.textContent = sourceLabel(id);
    const number = document.createElement("span");
    number.className = "count";
    number.textContent = count.toLocaleString();
    button.append(name, number);
    li.append(button);
    list.append(li);
  }
}

function describe(state, facets) {
  const counts = new Map(facets.map((f) => [String(f.value), f.count]));
  const chosen = state.sources.length ? state.sources : [...counts.keys()];
  const total = chosen.reduce((sum, id) => sum + (counts.get(id) || 0), 0);
  const [noun, verb] = total === 1 ? ["article", "matches"] : ["articles", "match"];
  const count = `${total.toLocaleString()} ${noun}`;
  if (byMeaning(state)) return `${count} nearest in meaning to “${state.q}”`;
  return state.q ? `${count} ${verb} “${state.q}”` : count;
}

// -- The timeline: matches per day, month or year, whose bars narrow the range ------------

// Days for a range of a month or less, else months, rolled up into years past two.
function timelineUnit(state) {
  if (state.from && state.to && Date.parse(state.to) - Date.parse(state.from) < 31 * DAY_MS) {
    return "day";
  }
  return "month";
}

function lastDay(value) {
  // A bucket's last day: `2016` -> 2016-12-31, `2016-02` -> 2016-02-29, a day -> itself.
  const [year, month] = value.split("-").map(Number);
  if (value.length === 10) return value;
  const end = month ? new Date(Date.UTC(year, month, 0)) : new Date(Date.UTC(year, 12, 0));
  return end.toISOString().slice(0, 10);
}

function firstDay(value) {
  return value.length === 4 ? `${value}-01-01` : value.length === 7 ? `${value}-01` : value;
}

function bucketLabel(value) {
  if (value.length === 4) return value;
  const [year, month, day] = value.split("-").map(Number);
  const date = new Date(Date.UTC(year, month - 1, day || 1));
  const options = day ? { dateStyle: "medium" } : { month: "short", year: "numeric" };
  return new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }).format(date);
}

// The bucket after `value` (a year, month or day), for the empty ones between two counted.
function nextBucket(value) {
  const [year, month, day] = value.split("-").map(Number);
  if (value.length === 4) return String(year + 1).padStart(4, "0");
  if (value.length === 7) return new Date(Date.UTC(year, month, 1)).toISOString().slice(0, 7);
  return new Date(Date.UTC(year, month - 1, day + 1)).toISOString().slice(0, 10);
}

function withGaps(buckets) {
  const counted = new Map(buckets.map((b) => [b.value, b.count]));
  const all = [];
  for (let value = buckets[0]?.value; value && value <= buckets.at(-1).value; value = nextBucket(value)) {
    all.push({ value, count: counted.get(value) ?? 0 });
  }
  return all;
}

function renderTimeline(buckets) {
  let dated = buckets.filter((b) => b.value !== null);
  const undated = buckets.find((b) => b.value === null)?.count ?? 0;
  if (dated.length && dated.at(-1).value.length === 7 && withGaps(dated).length > 24) {
    const years = new Map();
    for (const { value, count } of dated) {
      years.set(value.slice(0, 4), (years.get(value.slice(0, 4)) ?? 0) + count);
    }
    dated = [...years].map(([value, count]) => ({ value, count }));
  }
  dated = withGaps(dated);
  const list = $("histogram");
  list.replaceChildren();
  const most = Math.max(1, ...dated.map((b) => b.count));
  for (const { value, count } of dated) {
    const li = document.createElement("li");
    const bar = document.createElement("button");
    bar.type = "button";
    bar.dataset.from = firstDay(value);
    bar.dataset.to = lastDay(value);
    const label = bucketLabel(value);
    bar.setAttribute("aria-label", `${label}: ${count.toLocaleString()} ${count === 1 ? "article" : "articles"}`);
    bar.title = bar.getAttribute("aria-label");
    const fill = document.createElement("span");
    fill.style.setProperty("--share", String(count / most)); // CSSOM: allowed by the CSP
    bar.append(fill);
    li.append(bar);
    list.append(li);
  }
  $("timeline-range").textContent = dated.length
    ? `${bucketLabel(dated[0].value)} – ${bucketLabel(dated.at(-1).value)}`
    : "No dated articles";
  $("timeline-undated").textContent = undated ? `and ${undated.toLocaleString()} undated` : "";
  $("timeline").hidden = !corpusHasDates;
}

function showDateControls() {
  for (const element of document.querySelectorAll("[data-dates]")) element.hidden = !corpusHasDates;
}

async function loadList(state) {
  listController?.abort();
  const controller = new AbortController();
  listController = controller;
  const path = listPath(state);
  showRequest(path);
  $("status").textContent = "Searching…";
  try {
    const [page, counted, timeline] = await Promise.all([
      getJson(path, controller.signal),
      getJson(facetPath(state), controller.signal),
      corpusHasDates ? getJson(timelinePath(state, timelineUnit(state)), controller.signal) : null,
    ]);
    $("results").replaceChildren();
    appendPage(page, state);
    renderFacets(counted.facets?.source_id ?? [], state);
    if (timeline) renderTimeline(Object.values(timeline.facets ?? {})[0] ?? []);
    if (page.items.length) $("status").textContent = describe(state, counted.facets?.source_id ?? []);
    else showNothingFound(state, page.suggestion);
    shownListKey = listKey(state);
  } catch (error) {
    if (error.name === "AbortError") return;
    $("results").replaceChildren();
    $("more").hidden = true;
    nextUrl = null;
    shownListKey = null;
    $("status").textContent = `The API answered: ${error.message}`;
  }
}

// "No articles found", and the API's "did you mean" as a link, when it has one: the
// suggestion is for the search as sent, so the `*` the explorer added goes again.
function showNothingFound(state, suggestion) {
  const status = $("status");
  status.replaceChildren("No articles found.");
  if (typeof suggestion !== "string" || !suggestion) return;
  const q = asTyped(state.q) !== state.q ? suggestion.replace(/\*$/, "") : suggestion;
  const link = document.createElement("a");
  link.id = "suggestion";
  link.href = stateUrl({ ...state, q, article: "" });
  link.dataset.q = q;
  link.textContent = q;
  status.append(" Did you mean ", link, "?");
}

async function loadMore() {
  if (!nextUrl || loadingMore) return;
  loadingMore = true;
  const state = readState();
  const controller = listController;
  const path = nextUrl;
  showRequest(path);
  try {
    appendPage(await getJson(path, controller?.signal), state);
  } catch (error) {
    if (error.name !== "AbortError") $("status").textContent = `The API answered: ${error.message}`;
  } finally {
    loadingMore = false;
  }
  // A tall screen may show the end of the list again at once.
  if (nextUrl && isVisible($("more"))) loadMore();
}

function isVisible(element) {
  if (element.hidden) return false;
  const box = element.getBoundingClientRect();
  return box.top < innerHeight && box.bottom > 0;
}

const listKey = (state) =>
  JSON.stringify([state.q, byMeaning(state) && state.mode, state.sources, state.sort, state.from, state.to]);

// -- The article --------------------------------------------------------------------------

async function loadArticle(id) {
  articleController?.abort();
  const controller = new AbortController();
  articleController = controller;
  const view = $("article-view");
  $("article-title").textContent = "Loading…";
  $("article-meta").textContent = "";
  $("article-body").replaceChildren();
  $("similar").hidden = true;
  try {
    const article = await getJson(`/v1/articles/${encodeURIComponent(id)}`, controller.signal);
    $("article-title").textContent = article.title;
    metaLine($("article-meta"), article);
    const body = $("article-body");
    for (const paragraph of article.content.split(/\n\s*\n|\n/)) {
      if (!paragraph.trim()) continue;
      const p = document.createElement("p");
      p.textContent = paragraph;
      body.append(p);
    }
    document.title = `${article.title} · Corpus explorer`;
    view.focus();
    loadSimilar(id, controller.signal);
  } catch (error) {
    if (error.name === "AbortError") return;
    $("article-title").textContent = error.status === 404 ? "No such article" : "Could not load the article";
    $("article-meta").textContent = error.message;
  }
}

async function loadSimilar(id, signal) {
  try {
    const state = readState();
    const mode = meaningOn && state.mode ? `?mode=${state.mode}` : "";
    const page = await getJson(`/v1/articles/${encodeURIComponent(id)}/similar${mode}`, signal);
    const items = Array.isArray(page?.items) ? page.items : [];
    if (!items.length) return;
    const list = $("similar-list");
    list.replaceChildren();
    for (const item of items) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = stateUrl({ ...readState(), article: String(item.article_id) });
      link.dataset.article = String(item.article_id);
      link.textContent = item.title ?? `Article ${item.article_id}`;
      li.append(link);
      list.append(li);
    }
    $("similar").hidden = false;
  } catch {
    // No similar-articles route on this server (404/405), or it failed: leave it hidden.
  }
}

// -- Rendering and events -----------------------------------------------------------------

function render() {
  const state = readState();
  if ($("q").value.trim() !== state.q) $("q").value = state.q; // keeps a space being typed
  $("sort").value = state.sort;
  $("mode").value = state.mode;
  $("sort").disabled = byMeaning(state);
  $("from").value = state.from;
  $("to").value = state.to;
  $("clear-dates").hidden = !(state.from || state.to);
  const showArticle = Boolean(state.article);
  $("list-view").hidden = showArticle;
  $("article-view").hidden = !showArticle;
  if (showArticle) {
    $("back").href = stateUrl({ ...state, article: "" });
    scrollTo(0, 0);
    loadArticle(state.article);
    return;
  }
  articleController?.abort();
  document.title = state.q ? `${state.q} · Corpus explorer` : "Corpus explorer";
  if (shownListKey !== listKey(state)) loadList(state);
  else scrollTo(0, history.state?.scrollY ?? 0); // back from an article: where the reader was
}

function onSearchInput() {
  clearTimeout(debounceTimer);
  debounceTimer = setTimeout(() => {
    const state = readState();
    const q = $("q").value.trim();
    if (q === state.q && !state.article) return;
    // Typing replaces the current entry; a new search from an article view pushes one.
    go({ ...state, q, article: "" }, { replace: !state.article });
  }, DEBOUNCE_MS);
}

function init() {
  history.scrollRestoration = "manual"; // render() restores the list's position itself
  $("q").addEventListener("input", onSearchInput);
  $("q").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("q").value) {
      $("q").value = "";
      onSearchInput();
    }
  });
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(debounceTimer);
    go({ ...readState(), q: $("q").value.trim(), article: "" });
  });
  $("sort").addEventListener("change", () => go({ ...readState(), sort: $("sort").value, article: "" }));
  $("mode").addEventListener("change", () => go({ ...readState(), mode: $("mode").value, article: "" }));
  for (const id of ["from", "to"]) {
    $(id).addEventListener("change", () => {
      const value = DAY.test($(id).value) ? $(id).value : "";
      go({ ...readState(), [id]: value, article: "" });
    });
  }
  $("clear-dates").addEventListener("click", () => go({ ...readState(), from: "", to: "", article: "" }));
  $("status").addEventListener("click", (event) => {
    const link = event.target.closest("a#suggestion");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    go({ ...readState(), q: link.dataset.q, article: "" });
  });
  $("histogram").addEventListener("click", (event) => {
    const bar = event.target.closest("button[data-from]");
    if (bar) go({ ...readState(), from: bar.dataset.from, to: bar.dataset.to, article: "" });
  });
  $("facets").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-source]");
    if (!button) return;
    const state = readState();
    const id = button.dataset.source;
    const sources = state.sources.includes(id)
      ? state.sources.filter((s) => s !== id)
      : [...state.sources, id];
    go({ ...state, sources, article: "" });
  });
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-article], #back, #home");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    if (link.id === "back" && history.state?.fromList) {
      history.back();
      return;
    }
    const fromList = !readState().article;
    if (fromList) history.replaceState({ ...history.state, scrollY }, "");
    const url = new URL(link.href);
    history.pushState({ fromList: fromList && Boolean(link.dataset.article) }, "", url.pathname + url.search);
    render();
  });
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName ?? "");
    if (event.key === "/" && !typing) {
      event.preventDefault();
      $("q").focus();
    }
  });
  $("more").addEventListener("click", loadMore);
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadMore();
  }, { rootMargin: "0px 0px 400px 0px" }).observe($("more"));
  const key = $("api-key");
  key.value = apiKey();
  key.addEventListener("change", () => {
    pageKey = key.value.trim();
    try {
      if (pageKey) localStorage.setItem(KEY_STORAGE, pageKey);
      else localStorage.removeItem(KEY_STORAGE);
    } catch {
      // Storage is off (private mode): the key lasts for this page only.
    }
    shownListKey = null;
    Promise.all([loadSources(), loadDates(), loadMeaning()]).then(render);
  });
  addEventListener("popstate", render);
  // A reader may type into the box before this (deferred) script runs: what the box holds
  // then is the search to start from, not something to overwrite with the URL's.
  const typed = $("q").value.trim();
  const state = readState();
  if (typed && typed !== state.q && !state.article) {
    history.replaceState(null, "", stateUrl({ ...state, q: typed }));
  }
  Promise.all([loadSources(), loadDates(), loadMeaning()]).then(render);
}

// Whether any article has a date: one facet request over the whole corpus.
async function loadDates() {
  try {
    const page = await getJson("/v1/articles?facet=published_at:year&limit=1&fields=article_id");
    corpusHasDates = (page.facets?.["published_at:year"] ?? []).some((b) => b.value !== null);
  } catch {
    corpusHasDates = false;
  }
  showDateControls();
}

// Whether this server searches by meaning: /readyz names a vector index when it does.
async function loadMeaning() {
  try {
    const response = await fetch("/readyz");
    meaningOn = Boolean((await response.json()).vector_index);
  } catch {
    meaningOn = false;
  }
  for (const element of document.querySelectorAll("[data-meaning]")) element.hidden = !meaningOn;
}

async function loadSources() {
  try {
    const page = await getJson("/v1/sources");
    for (const source of page.items) sourceNames.set(source.source_id, source.name);
  } catch {
    // Names are a nicety: facets fall back to "Source N".
  }
}

init();
