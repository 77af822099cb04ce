/**
 * The credential proxy's cost: one streamed Messages API request to the scripted model, straight and
 * through `ModelProxy` (token check, key swap, both streams piped), alternating, on one keep-alive
 * connection each, so that the difference is the proxy's hop and nothing else.
 */
import { Agent, request } from 'node:http';
import { ModelProxy } from '../src/sandbox/model-proxy.js';
import { startMockModel } from '../src/testing/index.js';
import {
  alternate,
  describeMachine,
  machineLine,
  markdownTable,
  median,
  ms,
  now,
  signedMs,
  statsRow,
  textTable,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
} from './lib.js';

const DEFAULT_ITERATIONS = 300;
const WARMUP = 20;
/** The target of issue 10: the proxy adds less than this per model request (median). */
const TARGET_MS = 1;

const BODY = JSON.stringify({
  model: 'claude-bench',
  max_tokens: 32,
  stream: true,
  messages: [{ role: 'user', content: 'a short streamed reply, please' }],
});

/** One request: the time from sending it to the last byte of the streamed reply. */
function timed(base: string, key: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = now();
    const req = request(
      `${base}/v1/messages?beta=true`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'anthropic-version': '2023-06-01',
          'x-api-key': key,
          'content-length': Buffer.byteLength(BODY),
        },
      },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.resume();
        res.on('end', () => resolve(now() - started));
      },
    );
    req.on('error', reject);
    req.end(BODY);
  });
}

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  const machine = describeMachine();
  const model = await startMockModel();
  const proxy = await ModelProxy.start({ upstream: model.url, apiKey: 'sk-bench-real-key' });
  const straightAgent = new Agent({ keepAlive: true });
  const proxiedAgent = new Agent({ keepAlive: true });
  const straight: number[] = [];
  const proxied: number[] = [];
  try {
    const grant = proxy.grant();
    for (let i = 0; i < WARMUP + iterations; i++) {
      options.log(`  request ${i + 1}/${WARMUP + iterations}`);
      const [a, b] = await alternate(
        i,
        () => timed(model.url, 'sk-bench-real-key', straightAgent),
        () => timed(grant.baseUrl, grant.token, proxiedAgent),
      );
      if (i < WARMUP) continue;
      straight.push(a);
      proxied.push(b);
    }
  } finally {
    straightAgent.destroy();
    proxiedAgent.destroy();
    await proxy.close();
    await model.close();
  }
  const added = median(proxied) - median(straight);
  const pass = added < TARGET_MS;
  const header = ['', 'n', 'median ms', 'p90 ms', 'max ms'];
  const rows = [
    statsRow('straight to the scripted model', straight),
    statsRow('through the credential proxy', proxied),
  ];
  const targets = [
    ['target', 'measured', ''],
    [
      `proxy adds < ${TARGET_MS} ms per request (median)`,
      `${signedMs(added)} (${ms(median(proxied))} vs ${ms(median(straight))} ms)`,
      pass ? 'pass' : 'MISS',
    ],
  ];
  const intro =
    `Measured on ${machineLine(machine)}. Source: \`bench/proxy.ts\`.\n\n` +
    `One streamed Messages API request to the scripted model, from request to the reply's last byte, ` +
    `${iterations} times each way (after ${WARMUP} warm-ups), alternating, each way on its own keep-alive connection.`;
  return {
    text: `${textTable(header, rows)}\n\n${textTable(targets[0]!, targets.slice(1))}`,
    markdown:
      `## Proxy: the credential proxy's added latency\n\n${intro}\n\n${markdownTable(header, rows)}\n\n` +
      `### Targets\n\n${markdownTable(targets[0]!, targets.slice(1))}`,
    raw: { machine, straight, proxied },
    missed: pass ? [] : ['proxy added latency'],
  };
}

export const proxy: Suite = { name: 'proxy', run };
