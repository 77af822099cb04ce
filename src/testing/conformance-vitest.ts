/**
 * Registers conformance cases with vitest: one `describe` per suite, one per group within it, one `it` per
 * case. The cases themselves are framework-neutral (`./conformance/`); this module is the only one of the
 * suites that imports vitest, so that `berth/testing` works where vitest is not installed.
 */
import { describe, it } from 'vitest';
import { absentMethods, absentReason, runConformanceCase } from './conformance/runner.js';
import type { ConformanceCase, ConformanceFactory, SharedConformanceFactory } from './conformance/runner.js';

/** Options of {@link registerConformanceCases}. */
export interface RegisterConformanceOptions<T> {
  sharedFactory?: SharedConformanceFactory<T> | undefined;
  /** Vitest's timeout for the `slow` cases; the others keep the configured one. */
  slowCaseTimeoutMs?: number | undefined;
  /** Cases to skip, by name, each with the reason its title gives. */
  skip?: Readonly<Record<string, string>> | undefined;
}

/**
 * Registers `cases` under `describe(title)`. When a case needs optional methods, `factory` is called once
 * while the cases are collected to learn which the instance has: a case that needs an absent one, or a
 * `shared` case without `sharedFactory`, is registered with `it.skip`, its title saying why.
 */
export function registerConformanceCases<T>(
  title: string,
  cases: readonly ConformanceCase<T>[],
  factory: ConformanceFactory<T>,
  options: RegisterConformanceOptions<T> = {},
): void {
  const { sharedFactory, slowCaseTimeoutMs, skip: skipped = {} } = options;
  describe(title, async () => {
    let probe: T | undefined;
    if (cases.some((kase) => kase.requires?.length)) {
      const { instance, cleanup } = await factory();
      probe = instance;
      await cleanup?.();
    }
    const register = (kase: ConformanceCase<T>) => {
      const absent = probe === undefined ? [] : absentMethods(kase, probe);
      const skip = Object.hasOwn(skipped, kase.name)
        ? skipped[kase.name]
        : absent.length > 0
          ? absentReason(absent)
          : kase.shared && !sharedFactory
            ? 'no sharedFactory was given'
            : undefined;
      const body = () => runConformanceCase(kase, { factory, sharedFactory });
      if (skip !== undefined) it.skip(`${kase.name} (skipped: ${skip})`, body);
      else it(kase.name, body, kase.slow ? slowCaseTimeoutMs : undefined);
    };
    const groups = new Map<string | undefined, ConformanceCase<T>[]>();
    for (const kase of cases) groups.set(kase.group, [...(groups.get(kase.group) ?? []), kase]);
    for (const [group, members] of groups) {
      if (group === undefined) members.forEach(register);
      else describe(group, () => members.forEach(register));
    }
  });
}
