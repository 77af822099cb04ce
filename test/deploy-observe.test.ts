/**
 * deploy/grafana-dashboard.json and deploy/prometheus-alerts.yaml checked against what a real host serves:
 * a Berth server runs a turn (so the histograms and the model counters have samples), and its
 * `GET /metrics` is scraped. Every PromQL expression in both files (panel targets, the host variable's
 * query, alert rules) is tokenized, and
 * - every metric it names must be in the scrape: a sample, or a family's HELP/TYPE (a histogram's
 *   `_bucket`, `_sum` and `_count` are its samples);
 * - every label it names, in a selector or a `by`/`without` clause, must be on that metric's samples, or
 *   Prometheus' target labels (`instance`, `job`). A family with no samples yet (no store errors in a
 *   healthy run) is checked against the label names it was declared with instead.
 * Then the files' own shape: unique panel ids, a datasource on every panel and target (the `datasource`
 * variable), every selector narrowed to the host variable, legends that name labels the query keeps;
 * every alert with `expr`, `for`, a severity and a summary and description whose docs sections exist.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { makeTelemetry, type Telemetry } from '../src/observe/telemetry.js';
import { TestBerth } from './helpers/berth.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DASHBOARD_FILE = path.join(ROOT, 'deploy', 'grafana-dashboard.json');
const ALERTS_FILE = path.join(ROOT, 'deploy', 'prometheus-alerts.yaml');
/** Labels Prometheus adds to every series it scrapes (kubernetes_sd relabelling may add more; we use none). */
const TARGET_LABELS = new Set(['instance', 'job']);
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
const HOST_MATCHER = 'instance=~"$instance"';

// --- PromQL, as far as these files need it ---

/** A metric named in an expression, with the labels its selector matches on. */
interface MetricRef {
  name: string;
  matchers: { label: string; op: string; value: string }[];
}

interface Grouping {
  /** `by`, `without`, `on`, `ignoring`, `group_left` or `group_right`. */
  clause: string;
  labels: string[];
  /** The metrics the clause applies to: an aggregation's argument; for vector matching, the whole expression. */
  metrics: string[];
}

interface Parsed {
  metrics: MetricRef[];
  groupings: Grouping[];
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);
const LABEL_CLAUSES = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);

type Token = { kind: 'ident' | 'string' | 'number' | 'var' | 'punct' | 'op'; text: string };

const TOKEN =
  /\s+|#[^\n]*|([a-zA-Z_:][a-zA-Z0-9_:]*)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|(\d*\.?\d+(?:[eE][+-]?\d+)?)|(\$\{[^}]+\}|\$[a-zA-Z_]\w*)|([(){}[\],])|(=~|!~|!=|==|>=|<=|[-+*/%^<>=])/y;

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expr.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(expr);
    if (!m) throw new Error(`cannot read ${JSON.stringify(expr.slice(at, at + 20))} in ${expr}`);
    const kinds = ['ident', 'string', 'number', 'var', 'punct', 'op'] as const;
    const i = kinds.findIndex((_, k) => m[k + 1] !== undefined);
    if (i >= 0) tokens.push({ kind: kinds[i]!, text: m[i + 1]! });
  }
  return tokens;
}

/** The index of the token that closes the bracket at `open`. */
function closing(tokens: Token[], open: number): number {
  const pairs: Record<string, string> = { '(': ')', '{': '}', '[': ']' };
  const want = pairs[tokens[open]!.text]!;
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    const t = tokens[i]!.text;
    if (t === tokens[open]!.text) depth++;
    else if (t === want && --depth === 0) return i;
  }
  throw new Error(`unbalanced ${tokens[open]!.text}`);
}

/** `( a, b )` at `open`: the names, and the index after `)`. */
function labelList(tokens: Token[], open: number): { labels: string[]; next: number } {
  if (tokens[open]?.text !== '(') return { labels: [], next: open };
  const end = closing(tokens, open);
  const labels = tokens.slice(open + 1, end).flatMap((t) => (t.kind === 'ident' ? [t.text] : []));
  return { labels, next: end + 1 };
}

function parsePromQL(expr: string): Parsed {
  const tokens = tokenize(expr);
  const metrics: (MetricRef & { at: number })[] = [];
  const aggregations: { open: number; close: number; clauses: { clause: string; labels: string[] }[] }[] = [];
  const matching: { clause: string; labels: string[] }[] = [];
  let i = 0;
  while (i < tokens.length) {
    const t = tokens[i]!;
    const next = tokens[i + 1];
    if (t.text === '[') {
      i = closing(tokens, i) + 1; // a range or subquery: durations and Grafana's $__rate_interval
    } else if (t.text === 'offset') {
      i += 2; // its duration: `5m` would read as a number and a metric named m
    } else if (t.text === '{') {
      throw new Error(`a selector without a metric name is not supported here: ${expr}`);
    } else if (t.kind === 'ident' && LABEL_CLAUSES.has(t.text)) {
      const { labels, next: after } = labelList(tokens, i + 1);
      if (t.text !== 'by' && t.text !== 'without') matching.push({ clause: t.text, labels });
      i = after; // by/without were taken with their aggregation
    } else if (t.kind === 'ident' && AGGREGATIONS.has(t.text) && next !== undefined) {
      // `sum by (l) (x)` or `sum (x) by (l)`
      const clauses: { clause: string; labels: string[] }[] = [];
      let open = i + 1;
      if (next.text === 'by' || next.text === 'without') {
        const { labels, next: after } = labelList(tokens, i + 2);
        clauses.push({ clause: next.text, labels });
        open = after;
      }
      const close = closing(tokens, open);
      const trailing = tokens[close + 1];
      if (trailing?.text === 'by' || trailing?.text === 'without') {
        clauses.push({ clause: trailing.text, labels: labelList(tokens, close + 2).labels });
      }
      aggregations.push({ open, close, clauses });
      i = open;
    } else if (t.kind === 'ident' && next?.text === '(') {
      i++; // a function
    } else if (t.kind === 'ident' && !KEYWORDS.has(t.text.toLowerCase())) {
      const ref: MetricRef & { at: number } = { name: t.text, matchers: [], at: i };
      i++;
      if (tokens[i]?.text === '{') {
        const end = closing(tokens, i);
        for (let j = i + 1; j < end; j += 4) {
          const [label, op, value, sep] = tokens.slice(j, j + 4);
          if (label?.kind !== 'ident' || op?.kind !== 'op' || value?.kind !== 'string') {
            throw new Error(`cannot read the selector of ${t.text} in ${expr}`);
          }
          if (sep !== undefined && sep.text !== ',' && j + 3 !== end)
            throw new Error(`bad selector in ${expr}`);
          ref.matchers.push({ label: label.text, op: op.text, value: value.text.slice(1, -1) });
        }
        i = end + 1;
      }
      metrics.push(ref);
    } else {
      i++;
    }
  }
  const groupings: Grouping[] = [
    ...aggregations.flatMap(({ open, close, clauses }) =>
      clauses.map((c) => ({
        ...c,
        metrics: metrics.filter((m) => m.at > open && m.at < close).map((m) => m.name),
      })),
    ),
    ...matching.map((c) => ({ ...c, metrics: metrics.map((m) => m.name) })),
  ];
  return { metrics: metrics.map(({ name, matchers }) => ({ name, matchers })), groupings };
}

// --- the scrape ---

interface Scrape {
  /** Family name -> its TYPE. */
  families: Map<string, string>;
  /** Sample name (a histogram's `_bucket`, ...) -> the label names its samples carry. */
  samples: Map<string, Set<string>>;
  /** Family name -> the label names it was declared with (for families without samples). */
  declared: Map<string, string[]>;
}

function readScrape(text: string, telemetry: Telemetry): Scrape {
  const families = new Map<string, string>();
  const samples = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!sample) continue;
    const labels = samples.get(sample[1]!) ?? new Set<string>();
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g))
      labels.add(m[1]!);
    samples.set(sample[1]!, labels);
  }
  const declared = new Map<string, string[]>();
  for (const metric of telemetry.metrics.registry.getMetricsAsArray()) {
    // prom-client keeps a metric's configured label names on it; its types do not say so.
    declared.set(metric.name, [...((metric as unknown as { labelNames?: string[] }).labelNames ?? [])]);
  }
  return { families, samples, declared };
}

/** The family a sample name belongs to, and the labels it can have; undefined when the scrape lacks it. */
function lookup(scrape: Scrape, name: string): { family: string; labels: Set<string> } | undefined {
  const suffix = /_(bucket|sum|count)$/.exec(name);
  const base = suffix ? name.slice(0, -suffix[0].length) : name;
  const baseType = scrape.families.get(base);
  const family =
    scrape.families.has(name) || !suffix
      ? name
      : baseType === 'histogram' || (baseType === 'summary' && suffix[1] !== 'bucket')
        ? base
        : undefined;
  if (family === undefined || (!scrape.families.has(family) && !scrape.samples.has(name))) return undefined;
  const sampled = scrape.samples.get(name);
  const labels =
    sampled && sampled.size > 0
      ? sampled
      : new Set([...(scrape.declared.get(family) ?? []), ...(suffix?.[1] === 'bucket' ? ['le'] : [])]);
  return { family, labels };
}

/** What is wrong with `expr` against the scrape: unknown metrics, labels the metrics lack. */
function problems(expr: string, scrape: Scrape): string[] {
  const { metrics, groupings } = parsePromQL(expr);
  const out: string[] = [];
  if (metrics.length === 0) out.push(`no metric in ${expr}`);
  const known = (name: string, label: string): boolean =>
    TARGET_LABELS.has(label) || label === '__name__' || (lookup(scrape, name)?.labels.has(label) ?? false);
  for (const ref of metrics) {
    if (!lookup(scrape, ref.name)) {
      out.push(`${ref.name} is not in the scrape`);
      continue;
    }
    for (const { label } of ref.matchers) {
      if (!known(ref.name, label)) out.push(`${ref.name} has no label ${label}`);
    }
  }
  for (const g of groupings) {
    for (const label of g.labels) {
      const on = g.metrics.filter((name) => lookup(scrape, name));
      // An aggregation's labels must be on every metric it aggregates; a match's on at least one side.
      const ok =
        g.clause === 'by' || g.clause === 'without'
          ? on.every((name) => known(name, label))
          : on.some((name) => known(name, label));
      if (!ok) out.push(`${g.clause} (${label}): not a label of ${g.metrics.join(', ')}`);
    }
  }
  return out;
}

// --- the files ---

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: unknown;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: unknown;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: unknown;
  datasource?: unknown;
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: Variable[] };
  panels: Panel[];
}
interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const graphs = allPanels.filter((p) => p.type !== 'row');
const alerts = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
const rules = alerts.groups.flatMap((g) => g.rules);

/** Every PromQL expression of both files, named for a failure's message. */
function expressions(): { where: string; expr: string }[] {
  return [
    ...graphs.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })),
    ),
    ...rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
  ];
}

// --- a host that has run a turn ---

let berth: TestBerth | undefined;
let scrape: Scrape;

beforeAll(async () => {
  const telemetry = makeTelemetry();
  // One turn per subprocess: the turn is followed by a recycle, so berth_recycles_total has a sample too.
  berth = await TestBerth.start({ args: ['--warm-pool', '0', '--recycle-after-turns', '1'], telemetry });
  const id = await berth.createSession();
  await berth.turn(id, 'hello dashboards');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = await (await fetch(`${berth.url}/metrics`)).text();
    if (text.includes('berth_recycles_total{reason="turns"}') || Date.now() > deadline) {
      scrape = readScrape(text, telemetry);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  await berth?.dispose();
});

describe('dashboard and alerts against a host scrape', () => {
  it('has the samples the checks lean on', () => {
    expect(scrape.samples.get('berth_session_start_seconds_bucket')).toEqual(new Set(['le', 'kind']));
    expect(scrape.samples.get('berth_turn_duration_seconds_count')).toEqual(new Set(['stop_reason']));
    expect(scrape.samples.get('berth_recycles_total')).toEqual(new Set(['reason']));
    expect(scrape.families.get('berth_store_errors_total')).toBe('counter');
  });

  it('finds what it should: a misspelt metric or label, or a label an aggregation does not have, fails', () => {
    expect(problems('sum(rate(berth_model_request_total[5m]))', scrape)).toEqual([
      'berth_model_request_total is not in the scrape',
    ]);
    expect(problems('berth_sessions{state="idle"}', scrape)).toEqual(['berth_sessions has no label state']);
    expect(problems('sum by (le, kind) (rate(berth_turn_duration_seconds_bucket[5m]))', scrape)).toEqual([
      'by (kind): not a label of berth_turn_duration_seconds_bucket',
    ]);
    expect(problems('sum by (le) (rate(berth_turn_duration_seconds_count[5m]))', scrape)).toEqual([
      'by (le): not a label of berth_turn_duration_seconds_count',
    ]);
    // A family without samples is held to its declared labels.
    expect(problems('rate(berth_store_errors_total{tenant="a"}[5m])', scrape)).toEqual([
      'berth_store_errors_total has no label tenant',
    ]);
    expect(problems('rate(berth_store_errors_total{backend="s3"}[5m]) > 0', scrape)).toEqual([]);
  });

  it('references only metrics and labels a host serves', () => {
    const found = expressions().flatMap(({ where, expr }) =>
      problems(expr, scrape).map((p) => `${where}: ${p}`),
    );
    expect(found).toEqual([]);
    // Both files say something about every Berth family the host serves.
    const used = new Set(
      expressions().flatMap(({ expr }) =>
        parsePromQL(expr).metrics.map((m) => lookup(scrape, m.name)?.family ?? m.name),
      ),
    );
    const served = [...scrape.families.keys()].filter((f) => f.startsWith('berth_'));
    expect(served.filter((f) => !used.has(f))).toEqual([]);
  });

  it("reads the host variable's values from a metric every host serves", () => {
    const host = dashboard.templating.list.find((v) => v.name === 'instance');
    const query = (host?.query as { query?: string } | undefined)?.query;
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(query ?? '');
    expect(m, String(query)).not.toBeNull();
    expect(scrape.samples.has(m![1]!)).toBe(true);
    expect(TARGET_LABELS.has(m![2]!)).toBe(true);
  });
});

describe('deploy/grafana-dashboard.json', () => {
  it('is an importable dashboard with a Prometheus datasource variable and a host variable', () => {
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(vars.get('instance')).toMatchObject({ type: 'query', datasource: DATASOURCE });
  });

  it('has unique panel ids, and a datasource on every panel and target', () => {
    const ids = allPanels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of graphs) {
      expect(p.datasource, p.title).toEqual(DATASOURCE);
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.datasource, `${p.title} ${t.refId}`).toEqual(DATASOURCE);
        expect(t.expr, `${p.title} ${t.refId}`).toBeTruthy();
      }
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
    }
  });

  it('narrows every selector to the chosen hosts', () => {
    for (const p of graphs) {
      for (const t of p.targets ?? []) {
        for (const m of parsePromQL(t.expr).metrics) {
          expect(
            m.matchers.map((x) => `${x.label}${x.op}"${x.value}"`),
            `${p.title}: ${m.name}`,
          ).toContain(HOST_MATCHER);
        }
      }
    }
  });

  it('names in its legends only labels the query keeps', () => {
    for (const p of graphs) {
      for (const t of p.targets ?? []) {
        const legend = [...(t.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
        const { metrics, groupings } = parsePromQL(t.expr);
        const by = groupings.filter((g) => g.clause === 'by');
        // An aggregation keeps its `by` labels (less `le` once histogram_quantile has used it); a plain
        // selector keeps its metric's labels and the target's.
        const kept = by.length
          ? new Set(by.flatMap((g) => g.labels).filter((l) => l !== 'le'))
          : new Set([
              ...TARGET_LABELS,
              ...metrics.flatMap((m) => [...(lookup(scrape, m.name)?.labels ?? [])]),
            ]);
        for (const label of legend) expect(kept.has(label), `${p.title} ${t.refId}: {{${label}}}`).toBe(true);
      }
    }
  });
});

describe('deploy/prometheus-alerts.yaml', () => {
  it('is one group, berth, with the alerts operators need', () => {
    expect(alerts.groups.map((g) => g.name)).toEqual(['berth']);
    expect(rules.map((r) => r.alert).sort()).toEqual(
      [
        'BerthHostFull',
        'BerthHostNotReady',
        'BerthMemoryKills',
        'BerthMirrorBacklogGrowing',
        'BerthStoreErrors',
      ].sort(),
    );
  });

  it('gives every alert an expr, a for, a severity and a summary and description', () => {
    for (const r of rules) {
      expect(r.expr, r.alert).toBeTruthy();
      expect(r.for, r.alert).toMatch(/^\d+[smhd]$/);
      expect(['critical', 'warning', 'info'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toBeTruthy();
    }
  });

  it('points each alert at docs sections that exist', () => {
    for (const r of rules) {
      const refs = [...(r.annotations?.description ?? '').matchAll(/docs\/([\w-]+\.md), "([^"]+)"/g)];
      expect(refs.length, r.alert).toBeGreaterThan(0);
      for (const [, file, section] of refs) {
        const headings = readFileSync(path.join(ROOT, 'docs', file!), 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('#'))
          .map((l) => l.replace(/^#+\s*/, ''));
        expect(headings, `${r.alert}: docs/${file}, "${section}"`).toContain(section);
      }
    }
  });
});
