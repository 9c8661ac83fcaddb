// A small client written against types that openapi-typescript generates from our OpenAPI
// document (tests/test_openapi.py writes them to ./schema.ts and runs `tsc` on this file).
import type { components, paths } from "./schema";

type ArticlePage =
  paths["/v1/articles"]["get"]["responses"][200]["content"]["application/json"];
type ListQuery = NonNullable<paths["/v1/articles"]["get"]["parameters"]["query"]>;
type Article = components["schemas"]["Article"];
type Problem =
  paths["/v1/articles/{article_id}"]["get"]["responses"][404]["content"]["application/problem+json"];
type ArticleResponses = paths["/v1/articles/{article_id}"]["get"]["responses"];
type RateLimited = ArticleResponses[429]["content"]["application/problem+json"];
/** The IETF rate-limit headers every keyed answer carries (strings, as the document says). */
type Budget = Pick<ArticleResponses[200]["headers"], "RateLimit" | "RateLimit-Policy">;

/** The API key goes in `Authorization: Bearer` (the document's `bearer` scheme). */
const keyed = (key: string): RequestInit => ({ headers: { Authorization: `Bearer ${key}` } });

/** Every article id, following `next` links to the end. */
export async function listAllIds(
  base: string,
  key: string,
  query: ListQuery = {},
): Promise<number[]> {
  const params = new URLSearchParams();
  if (query.limit !== undefined) params.set("limit", String(query.limit));
  for (const source of query.source_id ?? []) params.append("source_id", String(source));
  const ids: number[] = [];
  let next: string | null = `/v1/articles?${params.toString()}`;
  while (next !== null) {
    const response = await fetch(new URL(next, base), keyed(key));
    const page = (await response.json()) as ArticlePage;
    for (const item of page.items) {
      // Every key is optional in a summary: `fields=` can leave any of them out.
      if (item.article_id != null) ids.push(item.article_id);
    }
    next = page.next;
  }
  return ids;
}

/** One article, or the problem that says why not, and what is left of the key's budget. */
export async function getArticle(
  base: string,
  key: string,
  id: number,
): Promise<[Article | Problem | RateLimited, Partial<Budget>]> {
  const response = await fetch(new URL(`/v1/articles/${id}`, base), keyed(key));
  const budget: Partial<Budget> = {
    RateLimit: response.headers.get("RateLimit") ?? undefined,
    "RateLimit-Policy": response.headers.get("RateLimit-Policy") ?? undefined,
  };
  const body = response.ok ? ((await response.json()) as Article) : ((await response.json()) as Problem);
  return [body, budget];
}

export function describe(result: Article | Problem): string {
  return "article_id" in result ? `${result.article_id}: ${result.title}` : result.detail;
}

export const example: Problem = {
  type: "urn:article-corpus:problem:not-found",
  title: "Not found",
  status: 404,
  detail: "No article with article_id 7.",
};

type ChangePage =
  paths["/v1/changes"]["get"]["responses"][200]["content"]["application/json"];

/** Apply one page of the change feed to a local copy of titles: `deleted` tells a takedown
 * (remove the copy) from an insert or update (replace it). Compiles only if the item type
 * narrows on `deleted`: a takedown has no `title`. */
export function applyChanges(titles: Map<number, string>, page: ChangePage): number {
  for (const item of page.items) {
    if (item.deleted) {
      titles.delete(item.article_id);
      console.log(`taken down at ${item.deleted_at}`);
    } else {
      titles.set(item.article_id, item.title);
    }
  }
  return page.next_after;
}

type FacetCount = components["schemas"]["FacetCount"];

/** Matches per month of a date range, for a histogram: the undated come as a null value. */
export async function monthlyCounts(
  base: string,
  key: string,
  range: Pick<ListQuery, "published_from" | "published_to">,
): Promise<Map<string | null, number>> {
  const params = new URLSearchParams({ facet: "published_at:month", limit: "1" });
  if (range.published_from) params.set("published_from", range.published_from);
  if (range.published_to) params.set("published_to", range.published_to);
  const response = await fetch(new URL(`/v1/articles?${params}`, base), keyed(key));
  const page = (await response.json()) as ArticlePage;
  const buckets: FacetCount[] = page.facets?.["published_at:month"] ?? [];
  return new Map(buckets.map((b) => [typeof b.value === "number" ? String(b.value) : b.value, b.count]));
}

/** The newest article's date, or null when it has none: the field is a string or null. */
export function publishedOn(item: ArticlePage["items"][number]): Date | null {
  return item.published_at ? new Date(item.published_at) : null;
}

type SearchMode = NonNullable<ListQuery["mode"]>;

/** The first page of a search by meaning (or fused, or by words): each hit's id and score.
 * Compiles only if `mode` is one of the document's modes and a summary's `score` a number. */
export async function searchBy(
  base: string,
  key: string,
  q: string,
  mode: SearchMode = "semantic",
): Promise<Array<[number, number]>> {
  const params = new URLSearchParams({ q, mode, limit: "10" });
  const response = await fetch(new URL(`/v1/articles?${params}`, base), keyed(key));
  const page = (await response.json()) as ArticlePage;
  const hits: Array<[number, number]> = [];
  for (const item of page.items) {
    if (item.article_id != null && item.score != null) hits.push([item.article_id, item.score]);
  }
  return hits;
}

export const modes: SearchMode[] = ["keyword", "semantic", "hybrid"];
