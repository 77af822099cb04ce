/**
 * A local S3-compatible server for tests: s3rver on 127.0.0.1 (a free port), storing into a fresh temp
 * directory that `close()` removes.
 *
 * s3rver runs in a child process started with `--openssl-legacy-provider`: it encrypts ListObjectsV2
 * continuation tokens with DES, which OpenSSL 3 (Node >= 17) refuses without it, so that any listing of
 * more than one page would fail with a 500. A separate process also keeps s3rver's synchronous filesystem
 * work off the test's event loop. The child exits when its stdin closes, so it cannot outlive the test
 * process.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3ClientConfig } from '@aws-sdk/client-s3';

export interface S3TestServer {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** A client for the server; `close()` destroys it. */
  client: S3Client;
  /** A new client for the server (another "process"); the caller destroys it. */
  newClient(overrides?: Partial<S3ClientConfig>): S3Client;
  createBucket(name: string): Promise<void>;
  /** Deletes every object of the bucket, then the bucket. */
  removeBucket(name: string): Promise<void>;
  /** Stops the server and removes its directory; idempotent. */
  close(): Promise<void>;
}

/** The credentials s3rver accepts by default. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** A client for an s3rver (or other local S3-compatible server) at `endpoint`. */
export function createS3Client(endpoint: string, overrides: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    // s3rver neither sends nor checks checksums; skip computing CRC32 over every body.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...overrides,
  });
}

const SERVER_SCRIPT = `
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory: process.env.S3RVER_DIRECTORY,
  silent: true,
  vhostBuckets: false,
});
server.run().then(
  (address) => process.stdout.write(JSON.stringify({ port: address.port }) + '\\n'),
  (err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); },
);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** Starts s3rver on 127.0.0.1 on a free port with a fresh directory. */
export async function startS3Server(): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), 'berth-s3-'));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', SERVER_SCRIPT], {
    env: {
      PATH: process.env.PATH ?? '',
      S3RVER_MODULE: createRequire(import.meta.url).resolve('s3rver'),
      S3RVER_DIRECTORY: directory,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // Closing stdin of a child that already died must not throw EPIPE at the test.
  child.stdin.on('error', () => undefined);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const line = stdout.split('\n')[0];
        if (stdout.includes('\n') && line) resolve((JSON.parse(line) as { port: number }).port);
      });
      child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening: ${stderr}`)));
      child.once('error', reject);
    });
  } catch (err) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw err;
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const client = createS3Client(endpoint);
  let closing: Promise<void> | undefined;
  return {
    endpoint,
    client,
    newClient: (overrides) => createS3Client(endpoint, overrides),
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async removeBucket(name) {
      for (;;) {
        const page = await client.send(new ListObjectsV2Command({ Bucket: name }));
        const keys = (page.Contents ?? []).flatMap((object) => (object.Key ? [{ Key: object.Key }] : []));
        if (keys.length === 0) break;
        await client.send(new DeleteObjectsCommand({ Bucket: name, Delete: { Objects: keys, Quiet: true } }));
      }
      await client.send(new DeleteBucketCommand({ Bucket: name }));
    },
    close() {
      closing ??= (async () => {
        client.destroy();
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
        await rm(directory, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
