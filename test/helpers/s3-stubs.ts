/**
 * What the S3 cases stub: s3rver's credentials in the environment, for code that builds its own client
 * from a URL, and a port nobody listens on, for a store that is down. Apart from `s3-server.ts`, which
 * the benchmarks import too: this one needs vitest.
 */
import { createServer } from 'node:net';
import { vi } from 'vitest';
import { S3RVER_ENV } from './backends.js';

/**
 * Puts s3rver's credentials in the environment until `vi.unstubAllEnvs()`, which vitest.config.ts has
 * vitest call before every test (`unstubEnvs`): they never outlive the test that stubbed them.
 */
export function stubS3rverCredentials(): void {
  for (const [name, value] of Object.entries(S3RVER_ENV)) vi.stubEnv(name, value);
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
