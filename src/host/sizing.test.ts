import { describe, expect, it } from 'vitest';
import { GIB, agentsPerHost, detectHostRam } from './sizing.js';

describe('agentsPerHost', () => {
  it('is (host RAM - overhead) / ceiling, rounded down', () => {
    expect(agentsPerHost({ hostRamBytes: 24 * GIB, overheadBytes: GIB, sessionCeilingBytes: GIB })).toBe(23);
    expect(
      agentsPerHost({ hostRamBytes: 24 * GIB, overheadBytes: GIB, sessionCeilingBytes: 384 * 1024 ** 2 }),
    ).toBe(61);
    expect(agentsPerHost({ hostRamBytes: 2.5 * GIB, overheadBytes: GIB, sessionCeilingBytes: GIB })).toBe(1);
  });

  it('is 0 when the overhead leaves no room, and refuses a ceiling of 0', () => {
    expect(agentsPerHost({ hostRamBytes: GIB, overheadBytes: 2 * GIB, sessionCeilingBytes: GIB })).toBe(0);
    expect(() => agentsPerHost({ hostRamBytes: GIB, overheadBytes: 0, sessionCeilingBytes: 0 })).toThrow(
      RangeError,
    );
  });

  it('detects some RAM', () => {
    expect(detectHostRam()).toBeGreaterThan(0);
  });
});
