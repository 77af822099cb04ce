import { describe, expect, it } from 'vitest';
import { hostingOf, normalizeEnvironmentConfig } from './managed-config.js';

const MIB = 1024 ** 2;
const withCgroups = { confined: true, agentMemoryBytes: 768 * MIB };

// The same check runs when an environment is made and when a session is made in it, on whichever host
// that is: an environment made where a limit is enforced is refused on a host where it is not.
describe("an environment's limits", () => {
  it("keeps a memory limit at or under the host's, and gives it and max_turns to the session", () => {
    const config = normalizeEnvironmentConfig(
      { type: 'cloud', limits: { memory_bytes: 256 * MIB, max_turns: 5 } },
      withCgroups,
    );
    expect(config.limits).toEqual({ memory_bytes: 256 * MIB, max_turns: 5 });
    expect(hostingOf(config).limits).toEqual({ memory_bytes: 256 * MIB, max_turns: 5 });
    expect(normalizeEnvironmentConfig({ type: 'cloud' }, withCgroups).limits).toBeUndefined();
    expect(hostingOf(normalizeEnvironmentConfig({ type: 'cloud' }, withCgroups)).limits).toEqual({});
  });

  it("refuses a memory limit over the host's, naming the field and the host's limit", () => {
    expect(() =>
      normalizeEnvironmentConfig({ type: 'cloud', limits: { memory_bytes: 769 * MIB } }, withCgroups),
    ).toThrow(new RegExp(`config\\.limits\\.memory_bytes: .*${768 * MIB} bytes`));
  });

  it('refuses a memory limit where agents get no cgroup, and takes max_turns anywhere', () => {
    for (const host of [{ confined: false }, { confined: true, agentMemoryBytes: undefined }]) {
      const networking = host.confined ? undefined : { type: 'unrestricted' as const };
      expect(() =>
        normalizeEnvironmentConfig({ type: 'cloud', networking, limits: { memory_bytes: 64 * MIB } }, host),
      ).toThrow(/config\.limits\.memory_bytes: .*has none/);
      expect(
        normalizeEnvironmentConfig({ type: 'cloud', networking, limits: { max_turns: 3 } }, host).limits,
      ).toEqual({ max_turns: 3 });
    }
  });
});
