/**
 * `GET /openapi.json`: the API as an OpenAPI 3.1 document, made from the zod schemas that validate the
 * requests (managed-schemas.ts, schemas.ts, the route files) and those that describe the answers
 * (response-schemas.ts, response-event-schemas.ts), by zod-openapi on zod's own JSON Schema output.
 *
 * The routes are one table, {@link ROUTES} (openapi-routes.ts). Each lists the error codes of its own;
 * the builder adds those every route of its kind can give (auth and `internal` under `/v1`, the body's
 * and the query's), and answers each status with Anthropic's error envelope, its `error_code` narrowed
 * to the route's codes of that status.
 */
import { z } from 'zod';
import {
  createDocument,
  type oas31,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
} from 'zod-openapi';
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import { ID_PATTERN } from '../ids.js';
import { TASK_ID_PATTERN } from '../tasks/task.js';
import { CATALOG_ID } from './catalog-routes.js';
import { ROUTES, type RouteDoc } from './openapi-routes.js';

/** `/v1/agents/:agent_id` as OpenAPI writes it, `/v1/agents/{agent_id}`; a trailing `*` is `{path}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z_]+)/g, '{$1}').replace(/\/\*$/, '/{path}');
}

/** What an id in the path may be: one that cannot be is refused before any lookup. */
function idPattern(path: string): RegExp {
  if (path.startsWith('/v1/tasks/')) return TASK_ID_PATTERN;
  if (path.startsWith('/v1/agents/') || path.startsWith('/v1/environments/')) return CATALOG_ID;
  return ID_PATTERN;
}

/** The path's parameters: each `:name`, and a trailing `*` as `path`. */
function pathParams(path: string): z.ZodObject | undefined {
  const shape: Record<string, z.ZodType> = {};
  for (const [, name] of path.matchAll(/:([A-Za-z_]+)/g)) shape[name!] = z.string().regex(idPattern(path));
  if (path.endsWith('/*')) {
    shape.path = z
      .string()
      .meta({ description: "The rest of the path (a file's path): its `/` as segments or as `%2F`" });
  }
  return Object.keys(shape).length > 0 ? z.object(shape) : undefined;
}

/** Anthropic's error envelope, `error_code` narrowed to `codes`. */
function errorEnvelope(codes: readonly ErrorCode[]): z.ZodType {
  const types = [...new Set(codes.map((code) => ERROR_CODES[code].type))];
  return z.object({
    type: z.literal('error'),
    error: z.object({
      type: z.enum(types as [string, ...string[]]),
      message: z.string(),
      details: z.object({ error_code: z.enum(codes as [ErrorCode, ...ErrorCode[]]) }),
    }),
    request_id: z.string(),
  });
}

const errorHeaders = z.object({
  'request-id': z
    .string()
    .meta({ description: 'The id of the request, as in `request_id`', header: { id: 'RequestId' } }),
  'x-should-retry': z.enum(['true', 'false']).meta({
    description: 'false: sending the same request again cannot help',
    header: { id: 'ShouldRetry' },
  }),
});

/** The route's error codes: its own and those every route of its kind can give. */
function errorCodes(route: RouteDoc): ErrorCode[] {
  const v1 = route.path.startsWith('/v1/');
  return [
    ...new Set<ErrorCode>([
      ...(v1 ? (['unauthorized', 'internal'] as const) : []),
      ...(route.body ? (['invalid_json', 'invalid_request', 'body_too_large'] as const) : []),
      ...(route.query ? (['invalid_request'] as const) : []),
      ...(route.errors ?? []),
    ]),
  ];
}

const SECURITY: Record<string, string[]>[] = [{ apiKey: [] }, { bearer: [] }];

function operation(route: RouteDoc): ZodOpenApiOperationObject {
  const responses: Record<string, ZodOpenApiResponseObject> = {};
  for (const answer of route.answers) {
    const previous = responses[answer.status];
    responses[answer.status] = {
      description: previous ? `${previous.description}; or ${answer.description}` : answer.description,
      content: { [answer.media]: { schema: answer.schema } },
    };
  }
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorCodes(route)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[status] = {
      description: codes.map((code) => `\`${code}\``).join(', '),
      headers: errorHeaders,
      content: { 'application/json': { schema: errorEnvelope(codes) } },
    };
  }
  const path = pathParams(route.path);
  const v1 = route.path.startsWith('/v1/');
  return {
    summary: route.summary,
    tags: [v1 ? route.path.split('/')[2]! : route.path.startsWith('/console') ? 'console' : 'server'],
    ...((path || route.query) && {
      requestParams: { ...(path && { path }), ...(route.query && { query: route.query }) },
    }),
    ...(route.body && {
      requestBody: { required: true, content: { 'application/json': { schema: route.body } } },
    }),
    ...(v1 && { security: SECURITY }),
    ...(route.optionalAuth && { security: [{}, ...SECURITY] }),
    responses,
  };
}

function build(): oas31.OpenAPIObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of ROUTES) {
    const path = openApiPath(route.path);
    paths[path] = { ...paths[path], [route.method]: operation(route) };
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Berth',
      version: '1',
      description:
        "Anthropic's Managed Agents API (agents, environments, sessions, events) and Berth's own routes (tasks, groups, hosts, health, metrics). See docs/api.md.",
    },
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
        bearer: { type: 'http', scheme: 'bearer' },
      },
    },
  });
}

let document: oas31.OpenAPIObject | undefined;

/** The document, made at the first call (about 150 ms): a host nobody asks pays nothing for it. */
export function openApiDocument(): oas31.OpenAPIObject {
  document ??= build();
  return document;
}
