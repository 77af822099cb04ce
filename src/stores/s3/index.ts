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
 *   catalog/entries|by-created|claims/<tenant>/<kind>/...               catalog entries, index, claims
 *
 * Each store's header (`s3/session-store.ts`, `s3/registry.ts`, `s3/event-log.ts`, `s3/catalog.ts`)
 * describes its objects and why it is safe with several Berth processes on one prefix; `s3/common.ts`
 * describes the encoding of the `<...>` parts, `s3/claims.ts` the claims, and `s3/client.ts` the client
 * all of them (and the S3 blob store) share. None of them needs conditional writes, which s3rver and
 * several S3-compatible servers lack; none overwrites an object that another process may write at the
 * same time, except a registry record, which only the host running that session updates, and a catalog
 * entry, which a replace overwrites only under a claim.
 *
 * This module loads the AWS SDK and the store modules only when {@link openS3Stores} runs, so a
 * deployment on another backend never loads them. The store classes are exported by their own modules.
 */
import type { Stores } from '../types.js';
import { connectS3Bucket, parseS3StoreUrl, redactUrl, S3Bucket } from './client.js';

export { connectS3Bucket, parseS3StoreUrl, redactUrl } from './client.js';
export type { S3StoreConfig } from './client.js';
export type { S3SessionStoreOptions } from './session-store.js';
export type { S3RegistryOptions } from './registry.js';
export type { S3EventLogOptions } from './event-log.js';
export type { S3CatalogOptions } from './catalog.js';

/**
 * Opens the stores an `s3://` URL names (see {@link parseS3StoreUrl}), after checking with HeadBucket that
 * the bucket is there and reachable with the credentials at hand: a bad URL, an unreachable endpoint, a
 * missing bucket or refused credentials fail here with `invalid_config`, naming the endpoint and bucket,
 * not at the first append. `close()` destroys the client; it is idempotent.
 */
export async function openS3Stores(url: string): Promise<Stores> {
  const config = parseS3StoreUrl(url);
  const client = await connectS3Bucket(config, `--store ${redactUrl(url)}`);
  const [{ S3SessionStore }, { S3Registry }, { S3EventLog }, { S3Catalog }] = await Promise.all([
    import('./session-store.js'),
    import('./registry.js'),
    import('./event-log.js'),
    import('./catalog.js'),
  ]);
  const options = { client, bucket: config.bucket, prefix: config.prefix };
  let closing: Promise<void> | undefined;
  return {
    transcriptStore: new S3SessionStore(options),
    registry: new S3Registry(options),
    eventLog: new S3EventLog(options),
    catalog: new S3Catalog(options),
    shared: true,
    close() {
      closing ??= Promise.resolve().then(() => client.destroy());
      return closing;
    },
    async destroy() {
      const bucket = new S3Bucket(client, config.bucket);
      if (config.prefix !== '') await bucket.deletePrefix(`${config.prefix}/`);
      // At the bucket's root, only what Berth writes: the bucket may hold other things.
      else for (const dir of BERTH_DIRS) await bucket.deletePrefix(`${dir}/`);
    },
  };
}

/** The top-level directories of the layout above. */
const BERTH_DIRS = [
  'transcripts',
  'summaries',
  'sessions',
  'by-created',
  'claims',
  'events',
  'catalog',
] as const;
