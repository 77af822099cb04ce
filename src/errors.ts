/**
 * Every failure Berth reports has a stable string `code`, and each code carries its HTTP status.
 * Code branches on `err.code`, never on messages; docs/errors.md lists the codes.
 */
export const ERROR_CODES = {
  // 400: the request itself is wrong
  invalid_json: { status: 400, type: 'invalid_request_error' },
  invalid_request: { status: 400, type: 'invalid_request_error' },
  invalid_session_id: { status: 400, type: 'invalid_request_error' },
  unknown_event_type: { status: 400, type: 'invalid_request_error' },
  invalid_config: { status: 400, type: 'invalid_request_error' },
  // 401
  unauthorized: { status: 401, type: 'authentication_error' },
  // 404: also used for another tenant's resources, so that ids do not leak
  session_not_found: { status: 404, type: 'not_found_error' },
  not_found: { status: 404, type: 'not_found_error' },
  group_not_found: { status: 404, type: 'not_found_error' },
  // 409: the request conflicts with the session's state
  session_exists: { status: 409, type: 'conflict_error' },
  session_terminated: { status: 409, type: 'conflict_error' },
  tool_use_not_pending: { status: 409, type: 'conflict_error' },
  // 413
  body_too_large: { status: 413, type: 'invalid_request_error' },
  // 429
  queue_full: { status: 429, type: 'rate_limit_error' },
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
} as const satisfies Record<string, { status: number; type: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BerthError extends Error {
  readonly code: ErrorCode;
  /** When the client may try again (the `Retry-After` header), for codes that mean "not now". */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number | undefined },
  ) {
    super(message, options);
    this.name = 'BerthError';
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get type(): string {
    return ERROR_CODES[this.code].type;
  }

  toJSON(): { error: { type: string; code: ErrorCode; message: string } } {
    return { error: { type: this.type, code: this.code, message: this.message } };
  }
}

export function isBerthError(err: unknown, code?: ErrorCode): err is BerthError {
  return err instanceof BerthError && (code === undefined || err.code === code);
}

/** A short description of any thrown value, for logs and `session.error` events. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
