import { describe, expect, it } from 'vitest';
import { InputQueue } from './input-queue.js';

describe('InputQueue', () => {
  it('delivers pushed items in order, waits for more, and ends', async () => {
    const q = new InputQueue<number>();
    q.push(1);
    const it = q[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 1, done: false });
    const waiting = it.next();
    q.push(2);
    expect(await waiting).toEqual({ value: 2, done: false });
    const ending = it.next();
    q.end();
    expect(await ending).toEqual({ value: undefined, done: true });
    expect(() => q.push(3)).toThrow(/after end/);
  });
});
