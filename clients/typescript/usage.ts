// What a frontend team writes against the API; `tsc --noEmit` fails when the spec changes under it.
import type { components, paths } from "./generated/schema";

type Problem = components["schemas"]["Problem"];
type Contact = components["schemas"]["ContactRead"];
type ContactPage =
  paths["/v1/contacts"]["get"]["responses"][200]["content"]["application/json"];
type ContactQuery = NonNullable<paths["/v1/contacts"]["get"]["parameters"]["query"]>;
type NewContact =
  paths["/v1/contacts"]["post"]["requestBody"]["content"]["application/json"];
type NotFound =
  paths["/v1/contacts/{contact_id}"]["get"]["responses"][404]["content"]["application/problem+json"];

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ""}`);
  }

  /** The first invalid field, as "body.email", for a form to highlight. */
  get field(): string | undefined {
    return this.problem.errors?.[0]?.loc.join(".");
  }
}

async function call<T>(baseUrl: string, key: string, path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(`${baseUrl}${path}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${key}`,
      "Content-Type": "application/json",
      ...(init?.headers as Record<string, string> | undefined),
    },
  });
  if (!response.ok) {
    throw new ApiError((await response.json()) as Problem);
  }
  return (await response.json()) as T;
}

export async function* allContacts(
  baseUrl: string,
  key: string,
  query: ContactQuery = {},
): AsyncGenerator<Contact> {
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams({ limit: String(query.limit ?? 100) });
    if (query.q) params.set("q", query.q);
    if (query.lifecycle_stage) params.set("lifecycle_stage", query.lifecycle_stage);
    if (cursor) params.set("cursor", cursor);
    const page: ContactPage = await call(baseUrl, key, `/v1/contacts?${params}`);
    yield* page.data;
    cursor = page.next_cursor;
  } while (cursor !== null);
}

export function displayName(contact: Contact): string {
  const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
  const consent = contact.consent.email.status === "granted" ? "" : " (no email consent)";
  return `${name || contact.email || contact.id}${consent} · v${contact.version}`;
}

export async function createLead(baseUrl: string, key: string, email: string): Promise<Contact> {
  const body: NewContact = { email, lifecycle_stage: "lead", tags: ["signup"] };
  return call<Contact>(baseUrl, key, "/v1/contacts", { method: "POST", body: JSON.stringify(body) });
}

export function describeNotFound(problem: NotFound): string {
  return `${problem.title} (${problem.instance ?? "?"})`;
}

// A settings screen for webhooks: subscribe, then show each delivery with its last attempt.
type NewEndpoint =
  paths["/v1/webhook-endpoints"]["post"]["requestBody"]["content"]["application/json"];
type EndpointWithSecret =
  paths["/v1/webhook-endpoints"]["post"]["responses"][201]["content"]["application/json"];
type DeliveryPage =
  paths["/v1/webhook-endpoints/{endpoint_id}/deliveries"]["get"]["responses"][200]["content"]["application/json"];
type EventPage = paths["/v1/events"]["get"]["responses"][200]["content"]["application/json"];

export async function subscribe(baseUrl: string, key: string, url: string): Promise<string> {
  const body: NewEndpoint = {
    url,
    event_types: ["contact.*", "*.deleted"],
    fields: ["lifecycle_stage"],
  };
  const endpoint: EndpointWithSecret = await call(baseUrl, key, "/v1/webhook-endpoints", {
    method: "POST",
    body: JSON.stringify(body),
  });
  return endpoint.secret; // shown once: the receiver keeps it to check signatures
}

export async function deliveryLines(baseUrl: string, key: string, endpointId: string): Promise<string[]> {
  const page: DeliveryPage = await call(baseUrl, key, `/v1/webhook-endpoints/${endpointId}/deliveries`);
  return page.data.map((delivery) => {
    const last = delivery.attempts[delivery.attempts.length - 1];
    const outcome = last ? (last.response_status ?? last.error ?? "") : "not tried yet";
    return `#${delivery.event_sequence} ${delivery.event_type}: ${delivery.status} (${outcome})`;
  });
}

export async function changesSince(baseUrl: string, key: string, sequence: number): Promise<number> {
  const page: EventPage = await call(baseUrl, key, `/v1/events?after_sequence=${sequence}`);
  for (const event of page.data) {
    for (const [field, change] of Object.entries(event.changes ?? {})) {
      console.log(event.sequence, event.type, field, JSON.stringify(change));
    }
  }
  return page.data.at(-1)?.sequence ?? sequence;
}

type Deal = components["schemas"]["DealRead"];
type Pipeline = components["schemas"]["PipelineRead"];
type Forecast =
  paths["/v1/deals/forecast"]["get"]["responses"][200]["content"]["application/json"];
type ForecastQuery = NonNullable<paths["/v1/deals/forecast"]["get"]["parameters"]["query"]>;
type DealMove = paths["/v1/deals/{deal_id}"]["patch"]["requestBody"]["content"]["application/json"];

/** A kanban board: the pipeline's columns in order, each with its deals. */
export function board(pipeline: Pipeline, deals: Deal[]): Map<string, Deal[]> {
  const columns = new Map(pipeline.stages.map((stage) => [stage.name, [] as Deal[]]));
  const names = new Map(pipeline.stages.map((stage) => [stage.id, stage.name]));
  for (const deal of deals) {
    columns.get(names.get(deal.stage_id) ?? "")?.push(deal);
  }
  return columns;
}

/** Dropping a card on another column: a stage move, refused with 412 if someone moved it first. */
export async function moveDeal(baseUrl: string, key: string, deal: Deal, stageId: string): Promise<Deal> {
  const body: DealMove = { stage_id: stageId };
  return call(baseUrl, key, `/v1/deals/${deal.id}`, {
    method: "PATCH",
    body: JSON.stringify(body),
    headers: { "If-Match": `"${deal.version}"` },
  });
}

/** Weighted pipeline per month, one line per currency (amounts are decimal strings). */
export async function weightedByMonth(baseUrl: string, key: string, query: ForecastQuery): Promise<string[]> {
  const params = new URLSearchParams({ group_by: "month" });
  if (query.pipeline_id) params.set("pipeline_id", query.pipeline_id);
  const forecast: Forecast = await call(baseUrl, key, `/v1/deals/forecast?${params}`);
  return forecast.rows.map((row) => `${row.period ?? "unscheduled"} ${row.currency} ${row.weighted_amount}`);
}
