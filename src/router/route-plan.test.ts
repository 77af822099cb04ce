import { describe, expect, it } from 'vitest';
import { DEFAULT_TASK_BODY_BYTES } from '../http/task-routes.js';
import { ID_PATTERN } from '../ids.js';
import type { HostEntry } from '../stores/coordination.js';
import { upstreamHeaders, downstreamHeaders } from './proxy.js';
import { newSessionId } from '../ids.js';
import { TASK_BODY_BYTES, bodyLimitFor, planRoute, prepareCreateBody } from './route-plan.js';
import { leastLoaded } from './router.js';

describe('planRoute', () => {
  it('binds a session and everything below it to the session', () => {
    expect(planRoute('GET', '/v1/sessions/sess_1')).toEqual({ kind: 'session', id: 'sess_1' });
    expect(planRoute('DELETE', '/v1/sessions/sess_1')).toEqual({ kind: 'session', id: 'sess_1' });
    expect(planRoute('POST', '/v1/sessions/sess_1/events')).toEqual({ kind: 'session', id: 'sess_1' });
    expect(planRoute('GET', '/v1/sessions/sess_1/events/stream')).toEqual({ kind: 'session', id: 'sess_1' });
    // Decoded as the host decodes it, so both compute the same routing key.
    expect(planRoute('GET', '/v1/sessions/a%2Db')).toEqual({ kind: 'session', id: 'a-b' });
    expect(planRoute('GET', '/v1/sessions/%E0%A4%A')).toEqual({ kind: 'session', id: '%E0%A4%A' });
  });

  it('routes a new session on its body, the list and unbound routes to the least loaded host', () => {
    expect(planRoute('POST', '/v1/sessions')).toEqual({ kind: 'create-session' });
    expect(planRoute('GET', '/v1/sessions')).toEqual({ kind: 'least-loaded' });
    expect(planRoute('GET', '/v1/sessions/')).toEqual({ kind: 'least-loaded' });
    expect(planRoute('POST', '/v1/tasks')).toEqual({ kind: 'least-loaded' });
    expect(planRoute('POST', '/v1/groups')).toEqual({ kind: 'least-loaded' });
    expect(planRoute('GET', '/v1/hosts/self')).toEqual({ kind: 'least-loaded' });
    expect(planRoute('GET', '/metrics')).toEqual({ kind: 'least-loaded' });
  });

  it('asks every host for a task or a group', () => {
    expect(planRoute('GET', '/v1/tasks/task_1')).toEqual({ kind: 'owner', resource: 'task' });
    expect(planRoute('GET', '/v1/tasks/task_1/artifacts/out/a.txt')).toEqual({
      kind: 'owner',
      resource: 'task',
    });
    expect(planRoute('POST', '/v1/groups/grp_1/events')).toEqual({ kind: 'owner', resource: 'group' });
    expect(planRoute('DELETE', '/v1/groups/grp_1')).toEqual({ kind: 'owner', resource: 'group' });
  });

  it('answers its own routes: health, readiness and the host list', () => {
    expect(planRoute('GET', '/healthz')).toEqual({ kind: 'healthz' });
    expect(planRoute('HEAD', '/readyz')).toEqual({ kind: 'readyz' });
    expect(planRoute('GET', '/v1/hosts')).toEqual({ kind: 'hosts' });
    expect(planRoute('POST', '/v1/hosts')).toEqual({ kind: 'least-loaded' });
  });
});

describe('bodyLimitFor', () => {
  it("gives tasks the hosts' task limit and everything else --max-body", () => {
    expect(TASK_BODY_BYTES).toBe(DEFAULT_TASK_BODY_BYTES);
    expect(bodyLimitFor('/v1/tasks', 1024)).toBe(TASK_BODY_BYTES);
    expect(bodyLimitFor('/v1/sessions', 1024)).toBe(1024);
    expect(bodyLimitFor('/v1/tasksx', 1024)).toBe(1024);
  });
});

describe('prepareCreateBody', () => {
  it('makes an id as a host would, and writes it into the body, leaving the rest byte for byte', () => {
    const text = '  {"title": "x",\n "metadata": {"id": "not-this-one"}}';
    const { body, id } = prepareCreateBody(Buffer.from(text));
    expect(id).toMatch(/^sess_[A-Za-z0-9_-]{20}$/);
    expect(id).toMatch(ID_PATTERN);
    expect(body.toString()).toBe(`  {"id":"${id}","title": "x",\n "metadata": {"id": "not-this-one"}}`);
    expect(JSON.parse(body.toString())).toEqual({ id, title: 'x', metadata: { id: 'not-this-one' } });
  });

  it('writes the id into an empty object', () => {
    const { body, id } = prepareCreateBody(Buffer.from('{ }'));
    expect(JSON.parse(body.toString())).toEqual({ id });
  });

  it("routes by the client's id, and leaves bodies the host must refuse as they are", () => {
    expect(prepareCreateBody(Buffer.from('{"id":"mine"}')).id).toBe('mine');
    for (const text of ['{"id":7}', '{"id":null}', '[]', '"x"', 'not json', '']) {
      const { body, id } = prepareCreateBody(Buffer.from(text));
      expect(id).toBeUndefined();
      expect(body.toString()).toBe(text);
    }
  });

  it('makes a different id each time', () => {
    expect(new Set(Array.from({ length: 100 }, newSessionId)).size).toBe(100);
  });
});

describe('leastLoaded', () => {
  const entry = (id: string, slotsFree: number, state: HostEntry['state'] = 'ready'): HostEntry => ({
    id,
    url: `http://${id}`,
    state,
    capacity: 8,
    slotsFree,
    lastHeartbeatAt: 0,
    expiresAt: 0,
  });

  it('orders ready hosts by free slots, leaving draining ones out', () => {
    const hosts = [entry('a', 1), entry('b', 5), entry('c', 9, 'draining'), entry('d', 5)];
    expect(leastLoaded(hosts).map((h) => h.id)).toEqual(['b', 'd', 'a']);
  });
});

describe('proxy headers', () => {
  it('drops hop-by-hop headers and those Connection names, and extends x-forwarded-for', () => {
    const headers = upstreamHeaders(
      {
        host: 'router:8080',
        connection: 'keep-alive, x-private',
        'keep-alive': 'timeout=5',
        'x-private': 'drop me',
        te: 'trailers',
        trailer: 'x-sum',
        'transfer-encoding': 'chunked',
        upgrade: 'websocket',
        'proxy-authorization': 'Basic x',
        'content-length': '999',
        expect: '100-continue',
        'last-event-id': '42',
        authorization: 'Bearer k',
        'x-forwarded-for': '10.0.0.1',
        'x-berth-forwarded': 'host-z',
      },
      '10.0.0.2',
      5,
    );
    expect(headers).toEqual({
      'last-event-id': '42',
      authorization: 'Bearer k',
      'x-forwarded-for': '10.0.0.1, 10.0.0.2',
      'content-length': '5',
    });
  });

  it("keeps the answer's length and type, and names the host", () => {
    const headers = downstreamHeaders(
      {
        'content-type': 'application/json',
        'content-length': '2',
        connection: 'keep-alive',
        'keep-alive': 'timeout=5',
      },
      'host-1',
    );
    expect(headers).toEqual({
      'content-type': 'application/json',
      'content-length': '2',
      'x-berth-host': 'host-1',
    });
    // A host that forwarded the request named the host that answered; that name stays.
    expect(downstreamHeaders({ 'x-berth-host': 'host-2' }, 'host-1')).toEqual({ 'x-berth-host': 'host-2' });
  });
});
