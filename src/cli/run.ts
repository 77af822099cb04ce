/**
 * `berth run "PROMPT"`: one task in a throwaway session, its result printed. A plain first version of the
 * ephemeral pattern: a fresh data dir per run (workspace, config dir, embedded store), removed at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseDuration, parseServeConfig } from '../config.js';
import { parseCommandArgs } from './args.js';
import { BerthError } from '../errors.js';
import { DEFAULT_TENANT } from '../http/auth.js';
import type { StoredEvent } from '../session/events.js';
import type { Session } from '../session/session.js';
import { openBerthCore } from '../server.js';

const HELP = `Usage: berth run "PROMPT" [options]

  --allowed-tools LIST    tools the agent may use without asking, comma-separated (others are denied)
  --system-prompt TEXT    the agent's system prompt
  --model NAME            the model
  --max-turns N           the most agentic turns
  --timeout DURATION      give up after this long (default 10m)
  --json                  print the turn's events as JSON lines instead of the reply text
  --model-endpoint URL, --mock-model, --mock-script FILE: as for "berth serve"`;

export async function runRunCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseCommandArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      'allowed-tools': { type: 'string' },
      'system-prompt': { type: 'string' },
      model: { type: 'string' },
      'max-turns': { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      'model-endpoint': { type: 'string' },
      'mock-model': { type: 'boolean' },
      'mock-script': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const prompt = positionals.join(' ').trim();
  if (prompt === '') throw new BerthError('invalid_config', 'berth run needs a prompt: berth run "PROMPT"');
  const maxTurns = values['max-turns'] === undefined ? undefined : Number(values['max-turns']);
  if (maxTurns !== undefined && (!Number.isInteger(maxTurns) || maxTurns < 1)) {
    throw new BerthError('invalid_config', '--max-turns must be a whole number of at least 1');
  }

  const timeoutMs = parseDuration(values.timeout ?? '10m', '--timeout');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-run-'));
  try {
    const serveArgs = ['--data-dir', dataDir];
    if (values['model-endpoint'] !== undefined) serveArgs.push('--model-endpoint', values['model-endpoint']);
    if (values['mock-model']) serveArgs.push('--mock-model');
    if (values['mock-script'] !== undefined) serveArgs.push('--mock-script', values['mock-script']);
    const config = parseServeConfig(serveArgs, { PATH: env.PATH, ANTHROPIC_API_KEY: env.ANTHROPIC_API_KEY });
    const core = await openBerthCore(config);
    try {
      const session = await core.host.create(DEFAULT_TENANT, {
        pattern: 'ephemeral',
        agent: {
          ...(values['allowed-tools'] !== undefined && {
            allowed_tools: values['allowed-tools']
              .split(',')
              .map((t) => t.trim())
              .filter(Boolean),
          }),
          ...(values['system-prompt'] !== undefined && { system_prompt: values['system-prompt'] }),
          ...(values.model !== undefined && { model: values.model }),
          ...(maxTurns !== undefined && { max_turns: maxTurns }),
        },
      });
      const events = await runOneTurn(session, prompt, timeoutMs);
      const idle = events.at(-1);
      if (values.json) {
        for (const event of events) process.stdout.write(`${JSON.stringify(event)}\n`);
      } else {
        process.stdout.write(`${replyText(events)}\n`);
      }
      const ok = idle?.type === 'session.status_idle' && idle.stop_reason.type === 'end_turn';
      if (!ok) process.stderr.write(`berth: the task did not finish cleanly: ${JSON.stringify(idle)}\n`);
      await session.close('task finished');
      return ok ? 0 : 1;
    } finally {
      await core.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * Sends one message and collects the turn's events up to its final `session.status_idle`. Tool uses
 * that need a confirmation are denied: nobody is there to answer.
 */
async function runOneTurn(session: Session, prompt: string, timeoutMs: number): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  let unsubscribe = (): void => undefined;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new BerthError('subprocess_failed', `The task took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
    unsubscribe = session.events.subscribe((event) => {
      events.push(event);
      if (event.type !== 'session.status_idle') return;
      if (event.stop_reason.type === 'requires_action') {
        const denials = session.pendingToolUses.map((id) => ({
          type: 'user.tool_confirmation' as const,
          tool_use_id: id,
          result: 'deny' as const,
          message: 'berth run allows only --allowed-tools',
        }));
        queueMicrotask(() => session.send(denials));
        return;
      }
      clearTimeout(timer);
      resolve();
    });
  });
  try {
    session.send([{ type: 'user.message', content: prompt }]);
    await done;
  } finally {
    unsubscribe();
  }
  return events;
}

function replyText(events: readonly StoredEvent[]): string {
  const texts: string[] = [];
  for (const event of events) {
    if (event.type !== 'agent.message') continue;
    texts.push(event.content.map((b) => (b.type === 'text' ? String(b.text) : '')).join(''));
  }
  return texts.at(-1) ?? '';
}
