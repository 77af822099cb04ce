/**
 * Berth's stores on S3 or any S3-compatible server (MinIO, R2, s3rver, ...): `--store
 * s3://BUCKET/PREFIX?endpoint=...&region=...&forcePathStyle=true`.
 *
 * Everything lives under `PREFIX/` in one bucket:
 *
 *   transcripts/<projectKey>/<sessionId>/<subpath or @>/p... and c...   transcript parts and segments
 *   summaries/<projectKey>/<sessionId>/v...                            session summary versions
 *   sessions/<tenant>/<id>                                             registry records
 *   by-created/<tenant>/<inverted createdAt>-<inverted id>~            registry index, newest first
 *   claims/<tenant>/<id>/k...                                          registry create claims
 *   events/<tenant/id>/b<max seq>-<min seq>-...                        event batches
 *
 * Each store's header (`s3/session-store.ts`, `s3/registry.ts`, `s3/event-log.ts`) describes its objects
 * and why it is safe with several Berth processes on one prefix; `s3/common.ts` describes the encoding of
 * the `<...>` parts. None of them needs conditional writes, which s3rver and several S3-compatible servers
 * lack; none overwrites an object that another process may write at the same time, except a registry
 * record, which only the host running that session updates.
 *
 * This module loads the AWS SDK and the store modules only when {@link openS3Stores} runs, so a
 * deployment on another backend never loads them. The store classes are exported by their own modules.
 */
import { BerthError, describeError } from '../../errors.js';
import type { Stores } from '../types.js';
import type { S3Client } from '@aws-sdk/client-s3';

export type { S3SessionStoreOptions } from './session-store.js';
export type { S3RegistryOptions } from './registry.js';
export type { S3EventLogOptions } from './event-log.js';

/** A parsed and validated `s3://` store URL. */
export interface S3StoreConfig {
  bucket: string;
  /** Key prefix without leading or trailing `/`; `''` for the bucket's root. */
  prefix: string;
  /** An S3-compatible endpoint (`http://127.0.0.1:9000`), or undefined for AWS S3 itself. */
  endpoint: string | undefined;
  /** The region, or undefined to take it from the AWS SDK's provider chain (`AWS_REGION`, ...). */
  region: string | undefined;
  /** Path-style addressing (`ENDPOINT/BUCKET/KEY`), which most S3-compatible servers need. */
  forcePathStyle: boolean;
}

const PARAMS = ['endpoint', 'region', 'forcePathStyle'] as const;

/**
 * Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&forcePathStyle=true|false]`, throwing
 * `invalid_config` that names the part at fault. Credentials are never part of the URL: they come from the
 * AWS SDK's default provider chain (environment, shared config, instance role).
 */
export function parseS3StoreUrl(url: string): S3StoreConfig {
  const fail = (why: string) => new BerthError('invalid_config', `--store ${redactUrl(url)}: ${why}`);
  const match = /^s3:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(url);
  if (!match) throw fail('expected s3://BUCKET/PREFIX?endpoint=URL&region=REGION&forcePathStyle=true');
  const bucket = match[1] ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw fail(`"${bucket}" is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')`);
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix !== '') {
    for (const part of prefix.split('/')) {
      if (!/^[A-Za-z0-9._-]+$/.test(part) || part === '.' || part === '..') {
        throw fail(
          `prefix "${prefix}" must be /-separated parts of A-Z a-z 0-9 . _ - (no empty, . or .. parts)`,
        );
      }
    }
  }
  const params = new URLSearchParams(match[3] ?? '');
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!(PARAMS as readonly string[]).includes(name)) {
      throw fail(`unknown parameter "${name}"; known: ${PARAMS.join(', ')}`);
    }
    if (seen.has(name)) throw fail(`parameter "${name}" is given twice`);
    seen.add(name);
  }
  let endpoint = params.get('endpoint') ?? undefined;
  if (endpoint !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(endpoint);
    } catch {
      throw fail(`endpoint "${endpoint}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw fail('endpoint must be http:// or https://');
    if (parsed.username || parsed.password)
      throw fail('endpoint must not hold credentials; use AWS_ACCESS_KEY_ID');
    if (parsed.search || parsed.hash) throw fail('endpoint must not have a query or a fragment');
    endpoint = parsed.href.replace(/\/$/, '');
  }
  const region = params.get('region') ?? undefined;
  if (region !== undefined && !/^[a-z0-9-]{1,64}$/.test(region))
    throw fail(`region "${region}" is not valid`);
  const style = params.get('forcePathStyle');
  if (style !== null && style !== 'true' && style !== 'false') {
    throw fail(`forcePathStyle must be true or false, got "${style}"`);
  }
  return { bucket, prefix, endpoint, region, forcePathStyle: style === 'true' };
}

/**
 * Opens the stores an `s3://` URL names (see {@link parseS3StoreUrl}), after checking with HeadBucket that
 * the bucket is there and reachable with the credentials at hand: a bad URL, an unreachable endpoint, a
 * missing bucket or refused credentials fail here with `invalid_config`, naming the endpoint and bucket,
 * not at the first append. `close()` destroys the client; it is idempotent.
 */
export async function openS3Stores(url: string): Promise<Stores> {
  const config = parseS3StoreUrl(url);
  const client = await connectS3Bucket(config, `--store ${redactUrl(url)}`);
  const [{ S3SessionStore }, { S3Registry }, { S3EventLog }] = await Promise.all([
    import('./session-store.js'),
    import('./registry.js'),
    import('./event-log.js'),
  ]);
  const options = { client, bucket: config.bucket, prefix: config.prefix };
  let closing: Promise<void> | undefined;
  return {
    transcriptStore: new S3SessionStore(options),
    registry: new S3Registry(options),
    eventLog: new S3EventLog(options),
    shared: true,
    close() {
      closing ??= Promise.resolve().then(() => client.destroy());
      return closing;
    },
    async destroy() {
      const { S3Bucket } = await import('./common.js');
      const bucket = new S3Bucket(client, config.bucket);
      if (config.prefix !== '') await bucket.deletePrefix(`${config.prefix}/`);
      // At the bucket's root, only what Berth writes: the bucket may hold other things.
      else for (const dir of BERTH_DIRS) await bucket.deletePrefix(`${dir}/`);
    },
  };
}

/**
 * A client for the bucket `config` names, checked with HeadBucket: an unreachable endpoint, a missing
 * bucket or refused credentials throw `invalid_config` starting with `what` (e.g. `--store URL`). The
 * caller owns the client and destroys it.
 */
export async function connectS3Bucket(config: S3StoreConfig, what: string): Promise<S3Client> {
  const where = `bucket "${config.bucket}" at ${config.endpoint ?? 'AWS S3'}`;
  const { S3Client, HeadBucketCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    // Servers behind a custom endpoint ignore the region, but the SDK needs one to sign with.
    ...(config.region ? { region: config.region } : config.endpoint ? { region: 'us-east-1' } : {}),
    forcePathStyle: config.forcePathStyle,
    // Without it an unroutable endpoint hangs for the OS's TCP timeout (minutes).
    requestHandler: { connectionTimeout: 5_000 },
  });
  try {
    await client.send(new HeadBucketCommand({ Bucket: config.bucket }));
  } catch (err) {
    client.destroy();
    const status = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
    const why =
      status === 404
        ? 'the bucket does not exist'
        : status === 403 || status === 401
          ? 'access denied (check the AWS credentials in the environment)'
          : describeError(err) || (err as { name?: string } | null)?.name || 'unknown error';
    throw new BerthError('invalid_config', `${what}: cannot use ${where}: ${why}`, { cause: err });
  }
  return client;
}

/** The top-level directories of the layout above. */
const BERTH_DIRS = ['transcripts', 'summaries', 'sessions', 'by-created', 'claims', 'events'] as const;

/** The URL without anything that looks like a secret, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@?#]*@/, '//***@');
}
