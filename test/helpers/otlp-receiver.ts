/**
 * A collector for one test: an OTLP/HTTP receiver on the loopback that keeps the spans POSTed to
 * `/v1/traces` as JSON (an `ExportTraceServiceRequest`), each with its resource's attributes, and of
 * every export (an agent CLI's `/v1/metrics` and `/v1/logs` too) its path and its resources' attributes.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';

/** An OTLP attribute value as JSON carries it; only the kinds Berth's spans use are read. */
interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
}

interface KeyValue {
  key: string;
  value: AnyValue;
}

interface WireSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KeyValue[];
  status?: { code?: number };
}

interface ExportRequest {
  resourceLogs?: { resource?: { attributes?: KeyValue[] } }[];
  resourceMetrics?: { resource?: { attributes?: KeyValue[] } }[];
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: WireSpan[] }[];
  }[];
}

/** A received span, its attributes and its resource's read into plain records. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Undefined for a root span (OTLP JSON sends an empty string or nothing). */
  parentSpanId: string | undefined;
  name: string;
  /** OTLP's `SpanKind`: 1 internal, 2 server, 3 client. */
  kind: number;
  scope: string | undefined;
  /** Milliseconds since the epoch. */
  startMs: number;
  endMs: number;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  statusCode: number;
}

/** OTLP's `SpanKind` numbers. */
export const SPAN_KIND = { internal: 1, server: 2, client: 3 } as const;

/** One POST of an export: its path, and the attributes of each resource it carried (JSON bodies only). */
export interface ReceivedExport {
  path: string;
  resources: Record<string, string | number | boolean>[];
}

export interface OtlpReceiver {
  /** The base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`): `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Every POST received, in order. */
  readonly exports: ReceivedExport[];
  close(): Promise<void>;
}

function attributesOf(list: readonly KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    if (v !== undefined) out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? promisify(gunzip)(raw) : raw;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const exports: ReceivedExport[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '').split('?')[0]!;
      const body = await bodyOf(req);
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      if (!String(req.headers['content-type']).startsWith('application/json')) {
        exports.push({ path, resources: [] });
        res.writeHead(415).end();
        return;
      }
      const request = JSON.parse(body.toString('utf8')) as ExportRequest;
      const resources = [
        ...(request.resourceSpans ?? []),
        ...(request.resourceLogs ?? []),
        ...(request.resourceMetrics ?? []),
      ].map((r) => attributesOf(r.resource?.attributes));
      exports.push({ path, resources });
      if (path === '/v1/traces') {
        for (const rs of request.resourceSpans ?? []) {
          const resource = attributesOf(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId || undefined,
                name: s.name,
                kind: s.kind,
                scope: ss.scope?.name,
                startMs: Number(BigInt(s.startTimeUnixNano) / 1_000_000n),
                endMs: Number(BigInt(s.endTimeUnixNano) / 1_000_000n),
                attributes: attributesOf(s.attributes),
                resource,
                statusCode: s.status?.code ?? 0,
              });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    })().catch(() => res.writeHead(400).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    exports,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
