/**
 * Every failure Berth reports has a stable string `code`, and each code carries its HTTP status.
 * Code branches on `err.code`, never on messages. Two tables live here: {@link ERROR_CODES} (HTTP
 * answers) and {@link EVENT_ERROR_TYPES} (failures reported inside a session's, task's or group's stream);
 * docs/errors.md lists both, and test/errors-doc.test.ts keeps the doc and the tables equal.
 */
import type { SDKAssistantMessageError } from '@anthropic-ai/claude-agent-sdk';
import { inspect } from 'node:util';

export const ERROR_CODES = {
  // 400: the request itself is wrong
  invalid_json: { status: 400, type: 'invalid_request_error' },
  invalid_request: { status: 400, type: 'invalid_request_error' },
  invalid_id: { status: 400, type: 'invalid_request_error' },
  unknown_event_type: { status: 400, type: 'invalid_request_error' },
  invalid_config: { status: 400, type: 'invalid_request_error' },
  // a Managed Agents feature Berth does not implement (the message names the field); nothing was changed
  unsupported: { status: 400, type: 'invalid_request_error' },
  environment_archived: { status: 400, type: 'invalid_request_error' },
  agent_archived: { status: 400, type: 'invalid_request_error' },
  // 401
  unauthorized: { status: 401, type: 'authentication_error' },
  // 404: also used for another tenant's resources, so that ids do not leak
  session_not_found: { status: 404, type: 'not_found_error' },
  not_found: { status: 404, type: 'not_found_error' },
  group_not_found: { status: 404, type: 'not_found_error' },
  agent_not_found: { status: 404, type: 'not_found_error' },
  environment_not_found: { status: 404, type: 'not_found_error' },
  // 409: the request conflicts with the session's state
  session_exists: { status: 409, type: 'conflict_error' },
  data_dir_locked: { status: 409, type: 'conflict_error' },
  session_terminated: { status: 409, type: 'conflict_error' },
  tool_use_not_pending: { status: 409, type: 'conflict_error' },
  // agents and environments (the catalog): an id taken, or a write based on a revision that is not current
  resource_exists: { status: 409, type: 'conflict_error' },
  revision_conflict: { status: 409, type: 'conflict_error' },
  // many hosts: the store refused a write under a lease another host has taken over; a request that
  // reached a host other than the session's (after a forward, which is not forwarded again)
  lease_lost: { status: 409, type: 'conflict_error' },
  session_elsewhere: { status: 409, type: 'conflict_error' },
  // 413
  body_too_large: { status: 413, type: 'invalid_request_error' },
  // 429
  queue_full: { status: 429, type: 'rate_limit_error' },
  quota_exceeded: { status: 429, type: 'rate_limit_error' },
  budget_exceeded: { status: 429, type: 'rate_limit_error' },
  // 503
  not_ready: { status: 503, type: 'overloaded_error' },
  host_full: { status: 503, type: 'overloaded_error' },
  host_draining: { status: 503, type: 'overloaded_error' },
  // 500: Berth or a backend failed
  store_unavailable: { status: 503, type: 'api_error' },
  subprocess_failed: { status: 500, type: 'api_error' },
  internal: { status: 500, type: 'api_error' },
  isolation_failed: { status: 500, type: 'api_error' },
  // workspace snapshots
  snapshot_too_large: { status: 413, type: 'invalid_request_error' },
  snapshot_invalid: { status: 500, type: 'api_error' },
  // ephemeral tasks
  task_not_found: { status: 404, type: 'not_found_error' },
  artifact_not_found: { status: 404, type: 'not_found_error' },
  invalid_path: { status: 400, type: 'invalid_request_error' },
  limit_exceeded: { status: 413, type: 'invalid_request_error' },
  // stores: an event seq the log already holds (never reported as `internal`, which means a bug)
  event_seq_conflict: { status: 409, type: 'conflict_error' },
  // the caller's AbortSignal stopped the call (a client that went away, a time limit, shutdown)
  aborted: { status: 499, type: 'api_error' },
} as const satisfies Record<string, { status: number; type: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BerthError extends Error {
  readonly code: ErrorCode;
  /** When the client may try again (the `Retry-After` header), for codes that mean "not now". */
  readonly retryAfterSeconds: number | undefined;

  /** Overrides the code's {@link retryable} for this one error. */
  private readonly retry: boolean | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number | undefined; retryable?: boolean },
  ) {
    super(message, options);
    this.name = 'BerthError';
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.retry = options?.retryable;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get type(): string {
    return ERROR_CODES[this.code].type;
  }

  /**
   * The error envelope of Anthropic's APIs: `error.type` groups codes, and the code is
   * `error.details.error_code` (where the official client's `APIError.errorCode` reads it).
   */
  toJSON(): ErrorEnvelope {
    return {
      type: 'error',
      error: { type: this.type, message: this.message, details: { error_code: this.code } },
    };
  }

  /**
   * Whether the same request may get another answer later: false tells a client (the official one reads
   * `x-should-retry`) that retrying is pointless, which it would otherwise do for 409s and 5xxs.
   */
  get retryable(): boolean {
    return this.retry ?? RETRYABLE_CODES.has(this.code);
  }
}

export interface ErrorEnvelope {
  type: 'error';
  error: { type: string; message: string; details: { error_code: ErrorCode } };
  /** Added by the HTTP layer: the `request-id` header's value. */
  request_id?: string;
}

/** Codes whose request may succeed when sent again later, unchanged. */
const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'lease_lost',
  'session_elsewhere',
  'queue_full',
  'quota_exceeded',
  'not_ready',
  'host_full',
  'host_draining',
  'store_unavailable',
  'subprocess_failed',
  'internal',
  'revision_conflict',
]);

export function isBerthError(err: unknown, code?: ErrorCode): err is BerthError {
  return err instanceof BerthError && (code === undefined || err.code === code);
}

/** A short description of any thrown value, for logs and `session.error` events. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Where an event error type can appear: `session.error`, `task.error` (and a failed task's record), `group.error`. */
export type EventErrorSource = 'session' | 'task' | 'group';

interface EventErrorType {
  readonly in: readonly EventErrorSource[];
  /** One line, as docs/errors.md says it. */
  readonly meaning: string;
}

/**
 * `model_<kind>`: the model request of a turn failed; `<kind>` is the SDK's `SDKAssistantMessageError`.
 * Typed as a complete map, so an SDK upgrade that adds a kind fails to compile until it is listed.
 */
const MODEL_ERROR_TYPES: { readonly [K in SDKAssistantMessageError as `model_${K}`]: EventErrorType } = {
  model_authentication_failed: { in: ['session', 'task'], meaning: 'the model API refused the key' },
  model_oauth_org_not_allowed: { in: ['session', 'task'], meaning: "the key's organisation may not use it" },
  model_account_on_hold: { in: ['session', 'task'], meaning: 'the model account is on hold' },
  model_verification_required: { in: ['session', 'task'], meaning: 'the model account needs verifying' },
  model_billing_error: { in: ['session', 'task'], meaning: 'the model account cannot be billed' },
  model_rate_limit: { in: ['session', 'task'], meaning: 'the model API rate-limited the request (429)' },
  model_overloaded: { in: ['session', 'task'], meaning: 'the model API was overloaded (529)' },
  model_invalid_request: { in: ['session', 'task'], meaning: 'the model API refused the request as invalid' },
  model_model_not_found: { in: ['session', 'task'], meaning: 'the agent names a model that does not exist' },
  model_server_error: { in: ['session', 'task'], meaning: 'the model API failed (5xx)' },
  model_unknown: {
    in: ['session', 'task'],
    meaning: 'the model request failed for a reason the SDK did not name',
  },
  model_max_output_tokens: {
    in: ['session', 'task'],
    meaning: 'the reply was cut at the output token limit',
  },
  model_cloud_credential_error: {
    in: ['session', 'task'],
    meaning: 'the cloud provider credentials for the model were refused',
  },
};

/**
 * The `error.type` of failures that happen after the request that caused them succeeded: in `session.error`
 * (then the turn's `session.status_idle` has `stop_reason: {type: 'error', subtype: <the same type>}`),
 * `task.error` and a failed task's record, and `group.error`. A turn or a round that cannot start because
 * of a `BerthError` reports its code instead (`host_full`, `store_unavailable`, ...: {@link ERROR_CODES});
 * every type the streams emit by name is here, codes among them (`internal`, `host_draining`).
 */
export const EVENT_ERROR_TYPES = {
  subprocess_exited: {
    in: ['session', 'task'],
    meaning:
      'the `claude` process ended mid-turn (crashed, killed, OOM); the message has the end of its stderr',
  },
  memory_limit: {
    in: ['session', 'task'],
    meaning:
      "the agent's processes went over the session's memory limit (`--session-ram-ceiling`, a cgroup of `--sandbox bwrap`) and were all killed; the next message resumes",
  },
  subprocess_stopped: {
    in: ['session'],
    meaning: 'the host stopped the process mid-turn (shutdown or drain)',
  },
  subprocess_failed: { in: ['session', 'task'], meaning: 'the turn or the task could not start' },
  host_restarted: {
    in: ['session', 'task'],
    meaning: 'the host running the turn or task went away (crash, SIGKILL); reported by the next host',
  },
  hard_rss_exceeded: {
    in: ['session'],
    meaning: 'the subprocess tree went over `--hard-rss` mid-turn and was killed',
  },
  suspend_failed: {
    in: ['session'],
    meaning: 'the session could not be suspended; it stays resumable on this host',
  },
  hydrate_failed: {
    in: ['session'],
    meaning: 'the workspace snapshot could not be restored before the turn; the session stays `suspended`',
  },
  host_draining: {
    in: ['session'],
    meaning: 'a queued message could not start because the host is draining',
  },
  mirror_error: {
    in: ['session', 'task'],
    meaning: 'the SDK could not write a transcript batch to the store',
  },
  mirror_delayed: {
    in: ['session'],
    meaning: 'the transcript store is not taking writes; entries wait on this host and ship when it is back',
  },
  ...MODEL_ERROR_TYPES,
  budget_exceeded: {
    in: ['session', 'task'],
    meaning:
      "the tenant's spend reached its budget (`--tenant-limits usd`), or the session's its `budget`; the model proxy refused the request",
  },
  timed_out: { in: ['task'], meaning: 'the task ran past `timeout_ms`; its process tree was killed' },
  max_turns: { in: ['task'], meaning: 'the agent reached `max_turns`' },
  agent_error: { in: ['task'], meaning: 'the agent ended with an error result' },
  error_during_execution: { in: ['task'], meaning: 'the SDK ended the run with an error it did not name' },
  error_max_budget_usd: { in: ['task'], meaning: "the run reached the SDK's cost budget" },
  error_max_structured_output_retries: {
    in: ['task'],
    meaning: 'the agent failed to produce valid structured output within the retries',
  },
  artifact_limit_exceeded: { in: ['task'], meaning: 'the task created or changed too many files or bytes' },
  artifacts_failed: { in: ['task'], meaning: 'the artifacts could not be stored in the blob store' },
  host_shutdown: {
    in: ['task'],
    meaning: 'the host shut down while the task ran; its processes were killed',
  },
  internal: { in: ['task', 'group'], meaning: 'a bug; the server logs the cause' },
  session_terminated: { in: ['group'], meaning: "an agent's session ended during the rounds" },
} as const satisfies Record<string, EventErrorType>;

export type EventErrorTypeName = keyof typeof EVENT_ERROR_TYPES;

/** Causes followed by {@link formatErrorForLog}; a longer chain is a loop in all but name. */
const MAX_LOGGED_CAUSES = 8;

/**
 * A thrown value as the server's log shows it. A failure of Berth or a backend (anything that is not a
 * `BerthError`, or one of type `api_error`) keeps its stack and every `cause` below it (and the members of
 * an `AggregateError`), since the message alone rarely says where it came from. A `BerthError` the caller
 * caused (`invalid_config`, `host_full`, ...) is its code and message: its stack says nothing new.
 */
export function formatErrorForLog(err: unknown): string {
  if (err instanceof BerthError && err.type !== 'api_error') return `${err.code}: ${err.message}`;
  const lines: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = err;
  for (let depth = 0; depth <= MAX_LOGGED_CAUSES; depth++) {
    if (seen.has(current)) {
      lines.push('caused by: (the same error again)');
      break;
    }
    seen.add(current);
    lines.push(`${depth === 0 ? '' : 'caused by: '}${withStack(current)}`);
    if (current instanceof AggregateError) {
      for (const [i, inner] of (current.errors as unknown[]).entries()) {
        lines.push(indent(`[${i}] ${withStack(inner)}`));
      }
    }
    if (!(current instanceof Error) || current.cause === undefined) break;
    current = current.cause;
  }
  return lines.join('\n');
}

function withStack(err: unknown): string {
  if (!(err instanceof Error)) return typeof err === 'string' ? err : inspect(err, { depth: 3 });
  const head = `${err.name}${err instanceof BerthError ? ` [${err.code}]` : ''}: ${err.message}`;
  const stack = err.stack ?? '';
  // V8 starts the stack with "Name: message"; only the frames below it are added.
  const frames = stack.split('\n').filter((line) => /^\s+at /.test(line));
  return [head, ...frames].join('\n');
}

function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}
