import { describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { HostLifecycle, type HostState } from './host-state.js';

/** A lifecycle walked to `state` along legal moves. */
function at(state: HostState): HostLifecycle {
  const path: Record<HostState, HostState[]> = {
    ready: [],
    draining: ['draining'],
    closing: ['closing'],
    closed: ['closing', 'closed'],
  };
  const life = new HostLifecycle();
  for (const step of path[state]) life.to(step);
  return life;
}

const ALL: HostState[] = ['ready', 'draining', 'closing', 'closed'];
const LEGAL = new Set(['ready->draining', 'ready->closing', 'draining->closing', 'closing->closed']);

describe('host states', () => {
  it('starts ready and admits', () => {
    const life = new HostLifecycle();
    expect(life.state).toBe('ready');
    expect(() => life.assertAdmitting()).not.toThrow();
  });

  for (const from of ALL) {
    for (const to of ALL) {
      const move = `${from}->${to}`;
      if (LEGAL.has(move)) {
        it(`allows ${move}`, () => {
          const life = at(from);
          life.to(to);
          expect(life.state).toBe(to);
        });
      } else {
        it(`refuses ${move} and stays ${from}`, () => {
          const life = at(from);
          expect(() => life.to(to)).toThrow(`illegal transition ${from} -> ${to}`);
          expect(life.state).toBe(from);
        });
      }
    }
  }

  it('refuses new work with host_draining while draining and not_ready once closing', () => {
    const codes = (['draining', 'closing', 'closed'] as const).map((state) => {
      try {
        at(state).assertAdmitting();
        return 'admitted';
      } catch (err) {
        return isBerthError(err) ? err.code : 'other';
      }
    });
    expect(codes).toEqual(['host_draining', 'not_ready', 'not_ready']);
  });
});
