// A small client written against types that openapi-typescript generates from our OpenAPI
// document (tests/test_openapi.py writes them to ./schema.ts and runs `tsc` on this file).
import type { components, paths } from "./schema";

type ArticlePage =
  paths["/v1/articles"]["get"]["responses"][200]["content"]["application/json"];
type ListQuery = NonNullable<paths["/v1/articles"]["get"]["parameters"]["query"]>;
type Article = components["schemas"]["Article"];
type Problem =
  paths["/v1/articles/{article_id}"]["get"]["responses"][404]["content"]["application/problem+json"];

/** Every article id, following `next` links to the end. */
export async function listAllIds(base: string, query: ListQuery = {}): Promise<number[]> {
  const params = new URLSearchParams();
  if (query.limit !== undefined) params.set("limit", String(query.limit));
  for (const source of query.source_id ?? []) params.append("source_id", String(source));
  const ids: number[] = [];
  let next: string | null = `/v1/articles?${params.toString()}`;
  while (next !== null) {
    const response = await fetch(new URL(next, base));
    const page = (await response.json()) as ArticlePage;
    for (const item of page.items) {
      // Every key is optional in a summary: `fields=` can leave any of them out.
      if (item.article_id != null) ids.push(item.article_id);
    }
    next = page.next;
  }
  return ids;
}

/** One article, or the problem that says why not. */
export async function getArticle(base: string, id: number): Promise<Article | Problem> {
  const response = await fetch(new URL(`/v1/articles/${id}`, base));
  return response.ok ? ((await response.json()) as Article) : ((await response.json()) as Problem);
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
