/**
 * deploy/kubernetes/ checked twice, with no cluster and no network:
 * - against Kubernetes: every manifest validates against the API schemas that kubernetes-models ships
 *   (4.5.x: Kubernetes 1.33; 5.x has 1.36 but needs Node 22), and a field the schema does not know
 *   fails too, as `kubectl apply` refuses it;
 * - against Berth: each container's args and environment go through the real parser of its command
 *   (`parseServeConfig`, `parseRouterConfig`), with the downward API, ConfigMaps and Secrets resolved
 *   from the manifests themselves; then what the manifests assume of the parsed config is checked (ports,
 *   probes, the drain against the grace period, the sizing formula, the host id and advertise URL).
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  Secret,
  Service,
  type IContainer,
  type IPodSpec,
  type IPodTemplateSpec,
} from 'kubernetes-models/v1';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { SERVE_OPTIONS, parseServeConfig, type ServeConfig } from '../src/config.js';
import { agentsPerHost } from '../src/host/sizing.js';
import type { HostInfo } from '../src/host/host-info.js';
import { Metrics } from '../src/observe/metrics.js';
import { ROUTER_OPTIONS, parseRouterConfig, type RouterConfig } from '../src/router/router-config.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIR = path.join(ROOT, 'deploy', 'kubernetes');
/** What the hosts are sized for (hosts.yaml shows the sum). */
const SESSIONS_PER_HOST = 16;
/** The gauge the HPA scales on; served by the hosts' GET /metrics. */
const HPA_METRIC = 'berth_slots_used_ratio';
const NAMESPACE = 'berth-test';

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

function loadManifests(): Manifest[] {
  const manifests: Manifest[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    // YAML 1.1, as Kubernetes reads it (`0400` is octal there).
    for (const doc of parseAllDocuments(readFileSync(path.join(DIR, file), 'utf8'), { version: '1.1' })) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const value = doc.toJS() as Manifest | null;
      if (value !== null) manifests.push({ ...value, file });
    }
  }
  return manifests;
}

const manifests = loadManifests();
const named = (kind: string, name: string): Manifest => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return found;
};
const label = (m: Manifest): string => `${m.file}: ${m.kind} ${m.metadata.name}`;

// --- the Kubernetes schemas ---

interface ModelClass {
  apiVersion: string;
  kind: string;
  prototype: { validate(): void };
}

const MODELS = new Map<string, ModelClass>(
  [
    ConfigMap,
    Secret,
    Service,
    Deployment,
    StatefulSet,
    HorizontalPodAutoscaler,
    NetworkPolicy,
    PodDisruptionBudget,
  ].map((model: ModelClass) => [`${model.apiVersion} ${model.kind}`, model]),
);

/**
 * Runs the schema's validator on `data`; returns its error, and the fields the schema does not know.
 * The validators are compiled ajv code that reads each property its schema defines (`data.spec`, ...)
 * and lists the keys of maps (labels, a ConfigMap's data), so a key of an object that the validator
 * neither read nor listed is one the schema lacks: a misspelt field, which the API server would drop.
 */
function validate(model: ModelClass, data: unknown): { error: string | undefined; unknown: string[] } {
  const records: { target: object; path: string; read: Set<PropertyKey>; listed: boolean }[] = [];
  const proxies = new WeakMap<object, object>();
  const wrap = (value: unknown, at: string): unknown => {
    if (value === null || typeof value !== 'object') return value;
    const known = proxies.get(value);
    if (known) return known;
    const record = { target: value, path: at, read: new Set<PropertyKey>(), listed: false };
    records.push(record);
    const proxy = new Proxy(value, {
      get(target, key) {
        record.read.add(key);
        const child: unknown = Reflect.get(target, key);
        return typeof key === 'string' ? wrap(child, `${at}/${key}`) : child;
      },
      has(target, key) {
        record.read.add(key);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        record.listed = true;
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  let error: string | undefined;
  try {
    model.prototype.validate.call(wrap(data, ''));
  } catch (err) {
    error = (err as Error).message;
  }
  const unknown = records
    .filter((r) => !Array.isArray(r.target) && !r.listed)
    .flatMap((r) =>
      Object.keys(r.target)
        .filter((key) => !r.read.has(key))
        .map((key) => `${r.path}/${key}`),
    );
  return { error, unknown };
}

describe('deploy/kubernetes against the Kubernetes API schemas', () => {
  it('kustomization.yaml lists every manifest', () => {
    const kustomization = parseAllDocuments(readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8'))[0];
    const resources = (kustomization?.toJS() as { resources: string[] }).resources;
    expect([...resources].sort()).toEqual([...new Set(manifests.map((m) => m.file))].sort());
  });

  it.each(manifests.map((m) => [label(m), m] as const))('%s', (_, manifest) => {
    const model = MODELS.get(`${manifest.apiVersion} ${manifest.kind}`);
    if (!model) {
      expect.fail(`${label(manifest)}: no schema for ${manifest.apiVersion} ${manifest.kind} in this test`);
    }
    const { file: _file, ...object } = manifest;
    const { error, unknown } = validate(model, object);
    expect(error, `${label(manifest)} does not match its schema`).toBeUndefined();
    expect(unknown, `${label(manifest)} has fields its schema does not know`).toEqual([]);
  });

  it('finds what it should: a bad type and a misspelt field fail', () => {
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', labels: { a: 'b' } } };
    const bad = validate(Service, { ...service, spec: { ports: [{ port: '80' }] } });
    expect(bad.error).toMatch(/ports\/0\/port must be integer/);
    const misspelt = validate(Service, { ...service, spec: { clusterIp: 'None' } });
    expect(misspelt).toEqual({ error: undefined, unknown: ['/spec/clusterIp'] });
  });
});

// --- the Berth CLI ---

interface Workload {
  manifest: Manifest;
  pod: IPodSpec;
  labels: Record<string, string>;
  podName: string;
}

const workloads: Workload[] = manifests
  .filter((m) => m.kind === 'StatefulSet' || m.kind === 'Deployment')
  .map((manifest) => {
    const template = (manifest.spec as { template: IPodTemplateSpec }).template;
    const suffix = manifest.kind === 'StatefulSet' ? '0' : '5d8f9c7b4-x2x7q';
    return {
      manifest,
      pod: template.spec!,
      labels: template.metadata?.labels ?? {},
      podName: `${manifest.metadata.name}-${suffix}`,
    };
  });

const temp = mkdtempSync(path.join(os.tmpdir(), 'berth-deploy-test-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** A Secret's or a ConfigMap's keys and values, from the manifests. */
function keysOf(kind: 'Secret' | 'ConfigMap', name: string): Record<string, string> {
  const m = named(kind, name) as Manifest & {
    data?: Record<string, string>;
    stringData?: Record<string, string>;
  };
  if (kind === 'ConfigMap') return m.data ?? {};
  const decoded = Object.entries(m.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]);
  return { ...(Object.fromEntries(decoded) as Record<string, string>), ...m.stringData };
}

/** The quantity suffixes the manifests use for memory. */
const BYTES: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

function quantity(value: string | number): number {
  const match = /^(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(String(value));
  const unit = BYTES[match?.[2] ?? '?'];
  if (!match || unit === undefined) throw new Error(`${value}: not a quantity this test reads`);
  return Number(match[1]) * unit;
}

/**
 * The container's environment and args as the kubelet gives them: envFrom, then env (which wins),
 * `$(VAR)` expanded, the downward API answered for `podName`; secret volumes are written to a temp dir
 * (from secrets.yaml) and paths into their mounts point there.
 */
function resolve(w: Workload, c: IContainer): { env: Record<string, string>; args: string[] } {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
    const exists = manifests.some((m) => m.kind === kind && m.metadata.name === ref?.name);
    if (!exists && ref?.optional) continue;
    Object.assign(env, keysOf(kind, ref!.name!));
  }
  const expand = (text: string): string =>
    text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name?: string) =>
      name === undefined ? '$' : (env[name] ?? all),
    );
  for (const e of c.env ?? []) {
    const from = e.valueFrom;
    if (from === undefined) env[e.name] = expand(e.value ?? '');
    else if (from.fieldRef) {
      const fields: Record<string, string> = { 'metadata.name': w.podName, 'metadata.namespace': NAMESPACE };
      env[e.name] = fields[from.fieldRef.fieldPath] ?? expect.fail(`${e.name}: ${from.fieldRef.fieldPath}?`);
    } else if (from.resourceFieldRef) {
      const [kind, resource] = from.resourceFieldRef.resource.split('.') as ['limits' | 'requests', string];
      const amount = c.resources?.[kind]?.[resource] ?? expect.fail(`${e.name}: no ${kind}.${resource}`);
      env[e.name] = String(quantity(amount) / quantity(from.resourceFieldRef.divisor ?? 1));
    } else {
      const ref = from.configMapKeyRef ?? from.secretKeyRef!;
      const values = keysOf(from.configMapKeyRef ? 'ConfigMap' : 'Secret', ref.name!);
      env[e.name] = values[ref.key] ?? expect.fail(`${e.name}: ${ref.name} has no key ${ref.key}`);
    }
  }
  const mounts = new Map<string, string>();
  for (const mount of c.volumeMounts ?? []) {
    const secret = w.pod.volumes?.find((v) => v.name === mount.name)?.secret;
    if (!secret) continue;
    const dir = path.join(temp, w.manifest.metadata.name, mount.name);
    mkdirSync(dir, { recursive: true });
    for (const [key, value] of Object.entries(keysOf('Secret', secret.secretName!))) {
      writeFileSync(path.join(dir, key), value);
    }
    mounts.set(mount.mountPath, dir);
  }
  const local = (text: string): string => {
    for (const [mountPath, dir] of mounts) {
      if (text.startsWith(`${mountPath}/`)) return dir + text.slice(mountPath.length);
    }
    return text;
  };
  for (const name of Object.keys(env)) env[name] = local(env[name]!);
  return { env, args: (c.args ?? []).map((arg) => local(expand(arg))) };
}

const COMMANDS = {
  serve: {
    flags: SERVE_OPTIONS.map((o) => o.flag),
    envs: SERVE_OPTIONS.map((o) => o.env),
    parse: parseServeConfig,
  },
  router: {
    flags: ROUTER_OPTIONS.map((o) => o.flag),
    envs: ROUTER_OPTIONS.flatMap((o) => o.env),
    parse: parseRouterConfig,
  },
} as const;

interface Resolved {
  w: Workload;
  c: IContainer;
  command: keyof typeof COMMANDS;
  env: Record<string, string>;
  args: string[];
}

/** Each workload's container with its command, args and environment. */
function resolveAll(): Resolved[] {
  return workloads.flatMap((w) =>
    w.pod.containers.map((c) => {
      const { env, args } = resolve(w, c);
      const [command, ...rest] = args;
      if (command !== 'serve' && command !== 'router') {
        return expect.fail(`${label(w.manifest)}: args start with ${command}, not serve or router`);
      }
      return { w, c, command, env, args: rest };
    }),
  );
}

/** ... and its config, as the real parser makes it. */
function parseAll(): (Resolved & { config: ServeConfig | RouterConfig })[] {
  return resolveAll().map((r) => {
    try {
      return { ...r, config: COMMANDS[r.command].parse(r.args, r.env) };
    } catch (err) {
      return expect.fail(`${label(r.w.manifest)}: berth ${r.command} refuses it: ${(err as Error).message}`);
    }
  });
}

const seconds = (ms: number): number => ms / 1000;
/** Berth's own deadline for a drain past --drain-timeout (src/cli/serve.ts). */
function drainMarginMs(): number {
  const source = readFileSync(path.join(ROOT, 'src', 'cli', 'serve.ts'), 'utf8');
  const match = /const DRAIN_MARGIN_MS = ([\d_]+);/.exec(source);
  if (!match) throw new Error('src/cli/serve.ts no longer says DRAIN_MARGIN_MS: update this test');
  return Number(match[1]!.replace(/_/g, ''));
}

describe('deploy/kubernetes against the Berth CLI', () => {
  it('runs a host and a router', () => {
    expect(
      resolveAll()
        .map((p) => p.command)
        .sort(),
    ).toEqual(['router', 'serve']);
  });

  it('gives each command only flags and BERTH_* variables it has', () => {
    for (const { w, command, env, args } of resolveAll()) {
      const flags = args.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]);
      const what = `${label(w.manifest)} (berth ${command})`;
      expect(
        flags.filter((f) => !COMMANDS[command].flags.includes(f!)),
        `${what}: unknown flags`,
      ).toEqual([]);
      const berth = Object.keys(env).filter((name) => name.startsWith('BERTH_'));
      const envs: readonly string[] = COMMANDS[command].envs;
      expect(
        berth.filter((name) => !envs.includes(name)),
        `${what}: unknown variables`,
      ).toEqual([]);
    }
  });

  it('keeps Kubernetes from adding BERTH_* variables of its own (service links)', () => {
    for (const w of workloads) expect(w.pod.enableServiceLinks, label(w.manifest)).toBe(false);
  });

  it('probes /healthz and /readyz on the port the server listens on', () => {
    for (const { w, c, config } of parseAll()) {
      const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
      expect([...ports.values()], label(w.manifest)).toEqual([config.port]);
      const probes = { readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: '/healthz' };
      for (const [probe, expected] of Object.entries(probes)) {
        const get = c[probe as keyof typeof probes]?.httpGet;
        if (get === undefined && probe === 'startupProbe') continue;
        expect(get?.path, `${label(w.manifest)} ${probe}`).toBe(expected);
        expect(typeof get?.port === 'string' ? ports.get(get.port) : get?.port).toBe(config.port);
      }
    }
  });

  it('gives a host more time to stop than its drain can take', () => {
    for (const { w, c, config } of parseAll()) {
      const sleep = c.lifecycle?.preStop?.exec?.command;
      const preStop = sleep?.[0] === 'sleep' ? Number(sleep[1]) : 0;
      const drain = 'drainTimeoutMs' in config ? seconds(config.drainTimeoutMs + drainMarginMs()) : 0;
      expect(w.pod.terminationGracePeriodSeconds, label(w.manifest)).toBeGreaterThan(preStop + drain);
    }
  });

  it('runs hosts in multi-host mode with the stable id, address and data dir of a StatefulSet pod', () => {
    for (const { w, c, config } of parseAll().filter((p) => p.command === 'serve')) {
      const host = config as ServeConfig;
      const sts = w.manifest.spec as {
        serviceName: string;
        volumeClaimTemplates: { metadata: { name: string } }[];
      };
      const service = named('Service', sts.serviceName).spec as { clusterIP?: string };
      expect(service.clusterIP, 'the StatefulSet service is headless').toBe('None');
      expect(host.cluster).toEqual({
        hostId: w.podName,
        advertiseUrl: `http://${w.podName}.${sts.serviceName}.${NAMESPACE}.svc.cluster.local:${host.port}`,
        leaseTtlMs: expect.any(Number) as number,
      });
      const claims = sts.volumeClaimTemplates.map((t) => t.metadata.name);
      const dataMount = c.volumeMounts?.find((m) => m.mountPath === host.dataDir);
      expect(claims, `${host.dataDir} is on a volume claim`).toContain(dataMount?.name);
      expect(host.apiKeys.size).toBeGreaterThan(0);
      expect(host.modelEndpoint, 'the model key is wired (else the scripted model runs)').not.toBeNull();
      expect(host.blobStore).toMatch(/^s3:\/\//);
      expect(agentsPerHost(host.sizing), 'sessions per host (the sum in hosts.yaml)').toBe(SESSIONS_PER_HOST);
      expect(host.sizing.hostRamBytes, 'host RAM is the memory request').toBe(
        quantity(c.resources!.requests!.memory!),
      );
      if (host.sandbox === 'bwrap') {
        expect(c.securityContext, 'bwrap needs root and a privileged container').toMatchObject({
          privileged: true,
          runAsUser: 0,
        });
      }
    }
  });

  it('points the router at the hosts’ store', () => {
    const store = keysOf('ConfigMap', 'berth-config').BERTH_STORE;
    const routers = parseAll().filter((p) => p.command === 'router');
    for (const { config } of routers) expect((config as RouterConfig).store).toBe(store);
  });

  it('wires selectors, Services, the HPA and the NetworkPolicy to the pods', () => {
    const selects = (selector: Record<string, string> | undefined, w: Workload): boolean =>
      Object.entries(selector ?? { none: '' }).every(([k, v]) => w.labels[k] === v);
    for (const m of manifests.filter((m) => m.kind === 'Service')) {
      const spec = m.spec as { selector: Record<string, string>; ports: { targetPort: string }[] };
      const pods = workloads.filter((w) => selects(spec.selector, w));
      expect(pods.length, `${label(m)} selects a workload`).toBe(1);
      for (const port of spec.ports) {
        const names = pods[0]!.pod.containers.flatMap((c) => c.ports ?? []).map((p) => p.name);
        expect(names, label(m)).toContain(port.targetPort);
      }
    }
    for (const m of manifests.filter((m) => m.kind === 'PodDisruptionBudget' || m.kind === 'NetworkPolicy')) {
      type Selector = { matchLabels: Record<string, string> };
      const spec = m.spec as { selector?: Selector; podSelector?: Selector };
      const selector = spec.selector ?? spec.podSelector;
      expect(workloads.filter((w) => selects(selector?.matchLabels, w)).length, label(m)).toBe(1);
    }
    const hpa = named('HorizontalPodAutoscaler', 'berth-host').spec as {
      scaleTargetRef: { kind: string; name: string };
      metrics: { pods?: { metric: { name: string } } }[];
    };
    expect(named(hpa.scaleTargetRef.kind, hpa.scaleTargetRef.name).kind).toBe('StatefulSet');
    expect(hpa.metrics.map((metric) => metric.pods?.metric.name)).toEqual([HPA_METRIC]);
  });

  it('scales on a metric the hosts export, which Prometheus can scrape without a tenant key', async () => {
    const metrics = new Metrics();
    const info = (): HostInfo => ({
      status: 'ready',
      capacity: {
        agents_per_host: 16,
        host_ram_bytes: null,
        overhead_bytes: null,
        session_ceiling_bytes: null,
      },
      slots: { used: 4, sessions: 4, spares: 0, tasks: 0, free: 12 },
      sessions: { loaded: 4, running: 1, suspended: 0 },
      warm_pool: { size: 0, parked: 0, starting: 0, prewarmed: 0, claimed: 0, refused: 0, lost: 0 },
    });
    const none = (): { entries: number; oldestSeconds: number } => ({ entries: 0, oldestSeconds: 0 });
    metrics.watch({ info, sessionStates: () => ({}), subprocessRssBytes: () => 0, mirror: none });
    expect((await metrics.scrape()).text).toMatch(new RegExp(`^${HPA_METRIC} 0\\.25$`, 'm'));
    const host = named('StatefulSet', 'berth-host').spec as {
      template: { spec: { containers: Array<{ args: string[] }> } };
    };
    expect(host.template.spec.containers[0]!.args).toContain('--metrics-public');
  });

  it('lets the hosts reach their stores, the model and DNS, and be reached on their port', () => {
    const rules = named('NetworkPolicy', 'berth-host').spec as {
      ingress: { ports: { port: number }[] }[];
      egress: { ports: { port: number }[] }[];
    };
    const egress = rules.egress.flatMap((r) => r.ports.map((p) => p.port));
    const host = parseAll().find((p) => p.command === 'serve')!.config as ServeConfig;
    const store = new URL(host.store);
    const storePort = Number(store.port || (store.protocol.startsWith('redis') ? 6379 : 5432));
    expect(egress).toEqual(expect.arrayContaining([53, 443, storePort, host.port]));
    expect(new URL(host.modelEndpoint!).protocol).toBe('https:');
    for (const rule of rules.ingress) expect(rule.ports.map((p) => p.port)).toEqual([host.port]);
  });
});
