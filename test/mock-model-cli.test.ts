/**
 * The mock model against the real `claude` subprocess: the SDK's `query()` runs the CLI with
 * ANTHROPIC_BASE_URL pointing at the mock model, so these tests fail when the wire format drifts
 * from what the CLI accepts.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { query, type Query, type SDKMessage, type SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findProcesses } from '../src/sandbox/process-tree.js';
import { startMockModel, type MockModel } from '../src/testing/mock-model.js';
import { eventually } from './helpers/wait.js';

interface Sandbox {
  root: string;
  cwd: string;
  configDir: string;
}

let model: MockModel;
let sandbox: Sandbox;
const queries: Query[] = [];

beforeEach(async () => {
  model = await startMockModel();
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-mock-cli-'));
  sandbox = { root, cwd: path.join(root, 'cwd'), configDir: path.join(root, 'config') };
  await fs.mkdir(sandbox.cwd);
  await fs.mkdir(sandbox.configDir);
});

afterEach(async () => {
  // A test that timed out never reached its own cleanup; closing again is harmless.
  for (const q of queries.splice(0)) q.close();
  await waitForNoClaudeProcess(sandbox.configDir);
  await model.close();
  await fs.rm(sandbox.root, { recursive: true, force: true });
});

function start(prompt: string | AsyncIterable<SDKUserMessage>): Query {
  const q = query({
    prompt,
    options: {
      cwd: sandbox.cwd,
      settingSources: [],
      // Running as root: bypassPermissions is refused, an allow-list works.
      allowedTools: ['Bash'],
      env: {
        PATH: process.env.PATH,
        HOME: sandbox.root,
        ANTHROPIC_BASE_URL: model.url,
        ANTHROPIC_API_KEY: 'sk-test',
        CLAUDE_CONFIG_DIR: sandbox.configDir,
        CLAUDE_CODE_DISABLE_AUTO_MEMORY: '1',
      },
    },
  });
  queries.push(q);
  return q;
}

/**
 * Pids of live processes whose environment holds this test's own config dir (a fresh temp dir): the
 * `claude` subprocess it started and anything that spawned, and nothing of another test or run.
 */
async function claudeProcesses(configDir: string): Promise<number[]> {
  const own = `CLAUDE_CONFIG_DIR=${configDir}`;
  return (await findProcesses((p) => p.env.includes(own))).map((p) => p.pid);
}

async function waitForNoClaudeProcess(configDir: string): Promise<void> {
  let pids: number[] = [];
  await eventually(
    async () => (pids = await claudeProcesses(configDir)).length === 0,
    () => `the claude processes of ${configDir} to end (still running: ${pids.join(', ')})`,
    { boundMs: 15_000 },
  );
}

function userMessage(content: string): SDKUserMessage {
  return { type: 'user', message: { role: 'user', content }, parent_tool_use_id: null };
}

describe('mock model with the real claude CLI', () => {
  it('drives a scripted Bash tool call and sends its result back', async () => {
    model.setScenarios([
      {
        name: 'write-marker',
        match: { userText: 'write the marker' },
        steps: [
          {
            toolUse: {
              name: 'Bash',
              input: {
                command: 'echo marker-content > marker.txt && echo wrote-marker',
                description: 'Write marker',
              },
            },
          },
          { text: 'Marker written.' },
        ],
      },
    ]);
    const q = start('Please write the marker file.');
    const messages: SDKMessage[] = [];
    try {
      for await (const message of q) messages.push(message);
    } finally {
      q.close();
    }

    const result = messages.find((m) => m.type === 'result');
    expect(result).toMatchObject({ subtype: 'success', result: 'Marker written.' });
    expect(await fs.readFile(path.join(sandbox.cwd, 'marker.txt'), 'utf8')).toBe('marker-content\n');

    const main = model.requests.filter((r) => r.isMain);
    expect(main.map((r) => [r.matchedScenario, r.stepIndex])).toEqual([
      ['write-marker', 0],
      ['write-marker', 1],
    ]);
    expect(main[0]!.userText).toBe('Please write the marker file.');
    expect(main[1]!.toolResults).toEqual([
      {
        tool_use_id: expect.stringMatching(/^toolu_/),
        text: expect.stringContaining('wrote-marker'),
        is_error: false,
      },
    ]);
    expect(main.every((r) => r.sessionId !== null && r.sessionId === main[0]!.sessionId)).toBe(true);
    await waitForNoClaudeProcess(sandbox.configDir);
  });

  it('carries the first turn into the second turn of a streaming-input session', async () => {
    const results: string[] = [];
    let runningBetweenTurns: number[] = [];
    let turnDone: () => void = () => {};
    const nextTurnDone = (): Promise<void> => new Promise((resolve) => (turnDone = resolve));

    async function* input(): AsyncGenerator<SDKUserMessage> {
      const first = nextTurnDone();
      yield userMessage('first turn: remember the word pelican');
      await first;
      const second = nextTurnDone();
      yield userMessage('second turn: which bird?');
      await second;
      // Returning ends stdin, so the CLI exits and the iterator below finishes.
    }

    const q = start(input());
    try {
      for await (const message of q) {
        if (message.type === 'result') {
          results.push(message.subtype === 'success' ? message.result : message.subtype);
          if (results.length === 1) runningBetweenTurns = await claudeProcesses(sandbox.configDir);
          turnDone();
        }
      }
    } finally {
      q.close();
    }

    expect(results).toEqual([
      'Scripted reply to: first turn: remember the word pelican',
      'Scripted reply to: second turn: which bird?',
    ]);
    const second = model.requests.find((r) => r.isMain && r.userText === 'second turn: which bird?');
    expect(second).toBeDefined();
    const transcript = JSON.stringify(second!.messages);
    expect(transcript).toContain('first turn: remember the word pelican');
    expect(transcript).toContain('Scripted reply to: first turn: remember the word pelican');
    expect(second!.stepIndex).toBe(0);
    // The held-open session kept its subprocess between turns (and proves the process probe sees it).
    expect(runningBetweenTurns.length).toBeGreaterThan(0);
    await waitForNoClaudeProcess(sandbox.configDir);
  });
});
