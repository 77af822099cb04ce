/**
 * A session resumes on another host that shares only the store: a second `berth serve` with its own data
 * dir (so its sessions' cwds, config dirs and local transcripts are elsewhere) finds the session and
 * resumes it, and the model receives the earlier turns. For each networked backend.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { allBackends } from './helpers/backends.js';
import { TestBerth, replyTexts } from './helpers/berth.js';
import { eventually } from './helpers/wait.js';
import { openStores } from '../src/stores/open-stores.js';

const backends = allBackends();
let model: MockModel | undefined;

afterAll(async () => {
  await model?.close();
  for (const b of backends) await b.close();
});

describe.each(backends)('resume on another host: $name', (backend) => {
  it('the second host finds the session and the model receives the earlier turns', async () => {
    model ??= await startMockModel();
    const store = await backend.create();
    const first = await TestBerth.start({ model, args: ['--store', store.url] });
    let second: TestBerth | undefined;
    try {
      const id = await first.createSession({ title: `moves (${backend.name})` });
      await first.turn(id, `the code word is marmalade-${backend.name}`);
      await first.dispose();

      second = await TestBerth.start({ model, args: ['--store', store.url] });
      expect(second.dataDir).not.toBe(first.dataDir);
      const got = await second.api('GET', `/v1/sessions/${id}`);
      expect(got.body).toMatchObject({ id, status: 'idle', berth: { status: 'idle', turns: 1 } });
      expect((await second.history(id)).some((e) => e.type === 'user.message')).toBe(true);

      const question = `what was the code word, ${backend.name}?`;
      const events = await second.turn(id, question);
      expect(replyTexts(events).join()).toContain(question);
      const request = model.requests.findLast((r) => r.isMain && r.userText === question);
      expect(JSON.stringify(request?.messages)).toContain(`the code word is marmalade-${backend.name}`);

      // What the resumed process wrote reaches the store too, so a third host resumes with both turns.
      // (The SDK drops the mirror frames of a resumed process whose config dir differs from the one it
      // chose, unless Berth moves it in place: see src/session/resume.ts.)
      const stores = await openStores(store.url);
      try {
        const sdkSessionId = (await stores.registry.get({ tenant: 'default', id }))!.sdkSessionId;
        await eventually(async () => {
          const entries = await stores.transcriptStore.load({
            projectKey: 'default',
            sessionId: sdkSessionId,
          });
          return JSON.stringify(entries).includes(question);
        }, 'the resumed turn to be in the store');
      } finally {
        await stores.close();
      }
    } finally {
      await second?.dispose();
      await first.dispose();
      await store.cleanup();
    }
  });
});
