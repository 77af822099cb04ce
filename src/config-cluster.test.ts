import { describe, expect, it } from 'vitest';
import { parseServeConfig } from './config.js';

const PG = 'postgres://postgres@127.0.0.1:5432/test';
const parse = (args: string[]) => parseServeConfig(['--sandbox', 'none', ...args], {});

describe('multi-host flags', () => {
  it('are off without --advertise-url', () => {
    expect(parse([]).cluster).toBeNull();
  });

  it('turn on with --advertise-url on PostgreSQL or Redis, with a host id from the URL and a 10 s lease', () => {
    expect(parse(['--store', PG, '--advertise-url', 'http://berth-0.hosts:8080/']).cluster).toEqual({
      hostId: 'berth-0-hosts-8080',
      advertiseUrl: 'http://berth-0.hosts:8080',
      leaseTtlMs: 10_000,
    });
    const redis = parse(['--store', 'redis://127.0.0.1:6379', '--advertise-url', 'https://h.example']);
    expect(redis.cluster).toMatchObject({ hostId: 'h-example-443' });
    const given = parse([
      '--store',
      PG,
      '--advertise-url',
      'http://a:1',
      '--host-id',
      'berth-3',
      '--lease-ttl',
      '2s',
    ]);
    expect(given.cluster).toMatchObject({ hostId: 'berth-3', leaseTtlMs: 2000 });
  });

  it('are read from BERTH_ variables too', () => {
    const config = parseServeConfig(['--sandbox', 'none'], {
      BERTH_STORE: PG,
      BERTH_ADVERTISE_URL: 'http://a:1',
      BERTH_HOST_ID: 'h1',
      BERTH_LEASE_TTL: '3s',
    });
    expect(config.cluster).toEqual({ hostId: 'h1', advertiseUrl: 'http://a:1', leaseTtlMs: 3000 });
  });

  it.each([
    [
      ['--advertise-url', 'http://a:1'],
      /PostgreSQL \(postgres:\/\/\) or Redis \(redis:\/\/\); --store sqlite:/,
    ],
    [
      ['--store', 's3://b/p?endpoint=http://x', '--advertise-url', 'http://a:1'],
      /PostgreSQL.*Redis.*--store s3:/,
    ],
    [['--store', 'memory:', '--advertise-url', 'http://a:1'], /PostgreSQL.*Redis.*--store memory:/],
    [['--store', PG, '--advertise-url', 'ftp://a'], /--advertise-url: "ftp:\/\/a" is not an http\(s\) URL/],
    [
      ['--store', PG, '--advertise-url', 'http://a:1', '--host-id', '../x'],
      /--host-id: "..\/x" does not match/,
    ],
    [
      ['--store', PG, '--advertise-url', 'http://a:1', '--lease-ttl', '500ms'],
      /--lease-ttl must be at least 1s/,
    ],
    [['--store', PG, '--advertise-url', 'http://a:1', '--lease-ttl', 'soon'], /--lease-ttl/],
    [['--store', PG, '--host-id', 'h1'], /--host-id needs --advertise-url/],
    [['--store', PG, '--lease-ttl', '5s'], /--lease-ttl needs --advertise-url/],
  ])('refuse %j', (args, message) => {
    expect(() => parse(args)).toThrow(message);
  });

  it('never shows the store password in a refusal', () => {
    expect(() => parse(['--store', 'sqlite:/tmp/secret-pw.db', '--advertise-url', 'http://a:1'])).toThrow(
      /--store sqlite:\.\.\./,
    );
  });
});
