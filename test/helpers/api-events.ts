/**
 * Events and sessions as the API shows them, typed by the official client's own types (so a test that
 * reads a field the client does not know fails to compile), plus Berth's additions: `seq` on every
 * event, its own event types, and the `berth` block of a session.
 */
import type { BetaManagedAgentsSessionEvent } from '@anthropic-ai/sdk/resources/beta/sessions/events';
import type { BetaManagedAgentsSession } from '@anthropic-ai/sdk/resources/beta/sessions/sessions';

/** Berth's own session events (docs/api.md). */
export type BerthSessionEvent =
  | { type: 'session.status_suspended'; id: string; processed_at: string; reason: string }
  | { type: 'session.status_rescheduled'; id: string; processed_at: string; reason: string }
  | { type: 'session.status_terminated'; id: string; processed_at: string; reason: string };

type WithSeq<T> = T extends unknown ? T & { seq: number } : never;

/** Managed Agents' events where Berth has them, with Berth's extras (`session.error`'s `code`, idle's `usage`). */
export type ApiEvent = WithSeq<
  | Exclude<
      BetaManagedAgentsSessionEvent,
      {
        type:
          | 'session.status_rescheduled'
          | 'session.status_terminated'
          | 'session.error'
          | 'session.status_idle';
      }
    >
  | (Extract<BetaManagedAgentsSessionEvent, { type: 'session.error' }> & {
      error: { code: string };
    })
  | (Extract<BetaManagedAgentsSessionEvent, { type: 'session.status_idle' }> & {
      usage?: { input_tokens: number; output_tokens: number; cost_usd: number };
      duration_ms?: number;
    })
  | BerthSessionEvent
>;

export type ApiSession = BetaManagedAgentsSession & {
  berth: { status: string; pattern: string; turns: number; cost_usd: number };
};

/** The text of a content block list. */
export function textOf(content: ReadonlyArray<{ type: string; text?: string }> | undefined): string {
  return (content ?? []).map((b) => (b.type === 'text' ? (b.text ?? '') : '')).join('');
}
