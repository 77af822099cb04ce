import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // The real `claude` subprocess costs ~0.75 s of CPU to start and the machine has 2 cores: files
    // run two at a time so suites that start subprocesses stay within their hang bounds.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
