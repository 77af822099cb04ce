/**
 * One code for every id in a path that cannot be an id: sessions, tasks and groups answer
 * `400 invalid_id` alike (docs/api.md, "Authentication" and the resources' sections).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBerth } from './helpers/berth.js';

let berth: TestBerth;

beforeAll(async () => {
  berth = await TestBerth.start();
});

afterAll(async () => {
  await berth?.dispose();
});

describe('an id that cannot be an id', () => {
  const cases: Array<[string, string]> = [
    ['GET', '/v1/sessions/bad!id'],
    ['GET', '/v1/sessions/-lead/events'],
    ['DELETE', `/v1/sessions/${'x'.repeat(65)}`],
    ['GET', '/v1/tasks/not-a-task'],
    ['GET', '/v1/tasks/task_bad!id/artifacts/out.txt'],
    ['GET', '/v1/tasks/sess_1/events/stream'],
    ['GET', '/v1/groups/bad!id'],
    ['DELETE', '/v1/groups/sess%C3%A3o'],
    ['GET', '/v1/groups/-x/events'],
  ];

  it.each(cases)('%s %s is 400 invalid_id', async (method, route) => {
    const res = await berth.api(method, route);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_id' });
  });

  it('while a well-formed id that names nothing is 404', async () => {
    expect((await berth.api('GET', '/v1/sessions/nobody')).body.error.code).toBe('session_not_found');
    expect((await berth.api('GET', '/v1/tasks/task_nobody')).body.error.code).toBe('task_not_found');
    expect((await berth.api('GET', '/v1/groups/nobody')).body.error.code).toBe('group_not_found');
  });
});
