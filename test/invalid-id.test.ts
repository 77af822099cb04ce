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
  const cases: Array<[string, string, unknown?]> = [
    ['GET', '/v1/sessions/bad!id'],
    ['GET', '/v1/sessions/-lead/events'],
    ['DELETE', `/v1/sessions/${'x'.repeat(65)}`],
    ['POST', '/v1/sessions/bad!id', { title: 'renamed' }],
    ['POST', '/v1/sessions/bad!id/archive'],
    ['POST', '/v1/sessions/-lead/events', { events: [{ type: 'user.interrupt' }] }],
    ['GET', '/v1/sessions/bad!id/events/stream'],
    ['GET', '/v1/tasks/not-a-task'],
    ['GET', '/v1/tasks/task_bad!id/artifacts/out.txt'],
    ['GET', '/v1/tasks/sess_1/events/stream'],
    ['GET', '/v1/groups/bad!id'],
    ['DELETE', '/v1/groups/sess%C3%A3o'],
    ['GET', '/v1/groups/-x/events'],
  ];

  it.each(cases)('%s %s is 400 invalid_id', async (method, route, body) => {
    const res = await berth.api(method, route, body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', details: { error_code: 'invalid_id' } },
    });
  });

  it.each([
    ['/v1/sessions/nobody', 'session_not_found'],
    ['/v1/tasks/task_nobody', 'task_not_found'],
    ['/v1/groups/nobody', 'group_not_found'],
  ])('while a well-formed id that names nothing is 404: GET %s', async (route, code) => {
    const res = await berth.api('GET', route);
    expect(res.status, JSON.stringify(res.body)).toBe(404);
    expect(res.body.error).toMatchObject({ type: 'not_found_error', details: { error_code: code } });
  });
});
