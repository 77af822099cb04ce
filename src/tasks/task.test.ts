import { describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { Task, newTaskId, newTaskRecord, type TaskRecord, type TaskStatus } from './task.js';

function record(): TaskRecord {
  return newTaskRecord({
    id: newTaskId(),
    prompt: 'p',
    agent: {},
    timeout_ms: 1000,
    max_turns: null,
    warm_start: false,
  });
}

function through(...path: TaskStatus[]): Task {
  const task = new Task('t', record());
  for (const status of path) task.transition(status);
  return task;
}

describe('Task', () => {
  it.each([
    [['running', 'succeeded']],
    [['running', 'failed']],
    [['running', 'timed_out']],
    [['failed']],
  ] as TaskStatus[][][])('allows %j, emitting a status event each and settling done', async (path) => {
    const task = through(...path);
    expect(task.status).toBe(path.at(-1));
    expect(task.events().map((e) => e.type)).toEqual(path.map((s) => `task.status_${s}`));
    expect((await task.done).status).toBe(path.at(-1));
    expect(task.isFinal).toBe(true);
  });

  it.each([
    [['succeeded']],
    [['timed_out']],
    [['queued']],
    [['running', 'running']],
    [['running', 'queued']],
    [['running', 'succeeded', 'failed']],
    [['failed', 'running']],
  ] as TaskStatus[][][])('refuses %j', (path) => {
    let error: unknown;
    try {
      through(...path);
    } catch (err) {
      error = err;
    }
    expect(isBerthError(error, 'internal')).toBe(true);
  });

  it('numbers events from 1, publishes them, and caps agent events', () => {
    const task = new Task('t', record());
    const seen: number[] = [];
    const unsubscribe = task.subscribe((e) => seen.push(e.seq));
    task.emit({ type: 'task.status_queued' });
    for (let i = 0; i < 10_005; i++) task.emit({ type: 'agent.thinking', thinking: 'x' });
    task.transition('running');
    unsubscribe();
    task.emit({ type: 'agent.thinking', thinking: 'after' });
    expect(task.droppedEvents).toBe(7);
    expect(task.events().at(-1)?.type).toBe('task.status_running');
    expect(seen).toEqual(task.events().map((e) => e.seq));
    expect(seen.slice(0, 3)).toEqual([1, 2, 3]);
  });
});
