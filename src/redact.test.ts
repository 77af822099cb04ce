import { describe, expect, it } from 'vitest';
import { redactUrl } from './redact.js';

describe('redactUrl', () => {
  it('replaces the password of the user info and keeps the rest', () => {
    expect(redactUrl('postgres://berth:s3cret@db.internal:5432/berth?schema=b1')).toBe(
      'postgres://berth:***@db.internal:5432/berth?schema=b1',
    );
    expect(redactUrl('redis://:s3cret@127.0.0.1:6379/0?prefix=p')).toBe(
      'redis://:***@127.0.0.1:6379/0?prefix=p',
    );
    expect(redactUrl('https://user:pw@proxy.example/v1')).toBe('https://user:***@proxy.example/v1');
  });

  it('hides a password that holds @, / or ? unencoded, up to the last @', () => {
    const shown = redactUrl('postgres://berth:p@ss/w?rd@db:5432/x');
    expect(shown).toBe('postgres://berth:***@db:5432/x');
    expect(shown).not.toContain('ss/w');
  });

  it('replaces secret query parameters', () => {
    expect(redactUrl('postgres://db/x?sslpassword=a&schema=s&password=b#frag')).toBe(
      'postgres://db/x?sslpassword=***&schema=s&password=***#frag',
    );
    expect(redactUrl('s3://bucket/p?endpoint=http://minio:9000&secretAccessKey=abc&token=t')).toBe(
      's3://bucket/p?endpoint=http://minio:9000&secretAccessKey=***&token=***',
    );
    expect(redactUrl('s3://bucket/p?endpoint=http://minio:pw@10.0.0.1:9000&region=r')).toBe(
      's3://bucket/p?endpoint=http://minio:***@10.0.0.1:9000&region=r',
    );
  });

  it('leaves URLs without secrets as they are', () => {
    for (const url of [
      'sqlite:/var/lib/berth/berth.db',
      'memory:',
      'postgres://postgres@127.0.0.1:5432/test',
      's3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true',
      'http://127.0.0.1:4000',
    ]) {
      expect(redactUrl(url)).toBe(url);
    }
  });
});
