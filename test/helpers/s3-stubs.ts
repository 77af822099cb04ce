/**
 * What the S3 cases stub: s3rver's credentials in the environment, for code that builds its own client
 * from a URL, and a port nobody listens on, for a store that is down. Apart from `s3-server.ts`, which
 * the benchmarks import too: this one needs vitest.
 */
import { createServer } from 'node:net';
import { vi } from 'vitest';
import { S3RVER_CREDENTIALS } from './s3-server.js';

/** Puts s3rver's credentials in the environment until `vi.unstubAllEnvs()`. */
export function stubS3rverCredentials(): void {
  vi.stubEnv('AWS_ACCESS_KEY_ID', S3RVER_CREDENTIALS.accessKeyId);
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', S3RVER_CREDENTIALS.secretAccessKey);
  // The provider chain must never reach for an instance metadata service from a test.
  vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
