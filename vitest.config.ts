import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // The real `claude` subprocess costs ~0.75 s of CPU to start and the machine has 2 cores: files
    // run two at a time so suites that start subprocesses stay within their hang bounds.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Refuses a dist/ older than src/, gives the run a temp root of its own (TMPDIR, inherited by the
    // workers) and fails the run on processes a test left behind: see test/global-setup.ts.
    globalSetup: ['test/global-setup.ts'],
    // A variable a test stubs (vi.stubEnv) is back to its value before the next test starts.
    unstubEnvs: true,
    env: {
      // The AWS SDK warns once per process that its releases after January 2027 need Node 22, which the
      // S3 tests' clients print once per test file; the variable is its own documented off switch
      // (@aws-sdk/core emitWarningIfUnsupportedVersion). Berth supports Node 20 until then, and a
      // `berth serve` with S3 stores still warns its operator, once.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  },
});
