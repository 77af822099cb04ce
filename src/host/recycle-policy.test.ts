import { describe, expect, it } from 'vitest';
import { RecyclePolicy, formatBytes, formatDuration } from './recycle-policy.js';

const MiB = 1024 ** 2;
const fresh = { turnsSinceSpawn: 0, rssBytes: 200 * MiB, ageMs: 1000 };

describe('RecyclePolicy', () => {
  it('never recycles without limits', () => {
    const policy = new RecyclePolicy();
    expect(policy.atTurnBoundary({ turnsSinceSpawn: 1e6, rssBytes: 1e12, ageMs: 1e12 })).toBeNull();
    expect(policy.overHardLimit(1e12)).toBeNull();
  });

  it('recycles after N turns, not before', () => {
    const policy = new RecyclePolicy({ afterTurns: 2 });
    expect(policy.atTurnBoundary({ ...fresh, turnsSinceSpawn: 1 })).toBeNull();
    expect(policy.atTurnBoundary({ ...fresh, turnsSinceSpawn: 2 })).toBe(
      '2 turns since spawn, the limit is 2',
    );
  });

  it('recycles over the soft RSS limit, and not without a sample', () => {
    const policy = new RecyclePolicy({ softRssBytes: 512 * MiB });
    expect(policy.atTurnBoundary({ ...fresh, rssBytes: 512 * MiB })).toBeNull();
    expect(policy.atTurnBoundary({ ...fresh, rssBytes: undefined })).toBeNull();
    expect(policy.atTurnBoundary({ ...fresh, rssBytes: 612 * MiB })).toBe(
      'rss 612 MiB over the soft limit 512 MiB',
    );
  });

  it('recycles at the maximum age', () => {
    const policy = new RecyclePolicy({ maxAgeMs: 30 * 60_000 });
    expect(policy.atTurnBoundary({ ...fresh, ageMs: 29 * 60_000 })).toBeNull();
    expect(policy.atTurnBoundary({ ...fresh, ageMs: 31 * 60_000 })).toBe('age 31m over the limit 30m');
  });

  it('reports the hard limit separately from the soft ones', () => {
    const policy = new RecyclePolicy({ hardRssBytes: 1024 * MiB });
    expect(policy.atTurnBoundary({ ...fresh, rssBytes: 2048 * MiB })).toBeNull();
    expect(policy.overHardLimit(1024 * MiB)).toBeNull();
    expect(policy.overHardLimit(1536 * MiB)).toBe('rss 1.5 GiB over the hard limit 1 GiB');
  });
});

describe('formatting', () => {
  it('formats sizes and durations for reasons', () => {
    expect(formatBytes(MiB)).toBe('1 MiB');
    expect(formatBytes(1.25 * MiB)).toBe('1.3 MiB');
    expect(formatBytes(641_728_512)).toBe('612 MiB');
    expect(formatBytes(2 * 1024 * MiB)).toBe('2 GiB');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(95_000)).toBe('1m35s');
    expect(formatDuration(3_600_000)).toBe('1h');
  });
});
