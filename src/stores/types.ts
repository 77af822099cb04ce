/**
 * What Berth keeps besides transcripts: the session registry (one record per session) and the event log
 * (every event of every session, in `seq` order). Transcripts go through the SDK's own `SessionStore`
 * interface; these two are Berth's. Both are async so that a networked backend can implement them. The
 * catalog of agents and environments has a module of its own (`catalog.ts`).
 */
import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { StoredEvent, Usage } from '../session/events.js';
import type { Catalog } from './catalog.js';
import type { Coordination } from './coordination.js';
import type { StoreCallOptions } from './call-options.js';
import type { ListPage } from './list-cursor.js';

export const PATTERNS = ['ephemeral', 'long-running', 'hybrid', 'multi-agent'] as const;
export type Pattern = (typeof PATTERNS)[number];

/**
 * The status a client sees.
 * - `idle`: waiting for input (with or without a live subprocess).
 * - `running`: a turn is in progress.
 * - `requires_action`: a turn is paused on a tool confirmation.
 * - `suspended`: idle and holding nothing on any host (transcript in the store, workspace in the blob
 *   store); the next message hydrates it.
 * - `terminated`: closed for good; only reads are allowed.
 */
export type SessionStatus = 'idle' | 'running' | 'requires_action' | 'suspended' | 'terminated';

/** How an agent is configured at session creation; fixed for the session's life. */
export interface AgentConfig {
  model?: string;
  system_prompt?: string;
  allowed_tools?: string[];
  disallowed_tools?: string[];
  permission_mode?: 'default' | 'acceptEdits' | 'bypassPermissions' | 'plan' | 'dontAsk';
  /** Agentic turns one user message may take (the SDK's `maxTurns`); over it the turn ends `max_turns`. */
  max_turns?: number;
  /**
   * The memory limit of the session's subprocess tree (its cgroup's), below the host's own; absent: the
   * host's. Only a host with a cgroup per agent enforces it, and the API refuses it elsewhere.
   */
  memory_bytes?: number;
  /**
   * The CLI's built-in tools the agent has (CLI names: `Bash`, `Read`, ...); absent means the CLI's own
   * default set, empty means none. An agent's toolset in the API becomes this list.
   */
  tools?: string[];
  /**
   * Tools (CLI names) whose every use waits for a `user.tool_confirmation`, even where the CLI would not
   * ask (read-only tools, read-only shell commands): the API's `always_ask` permission policy.
   */
  ask_tools?: string[];
  /** The model's effort level (the SDK's `effort`). */
  effort?: 'low' | 'medium' | 'high' | 'xhigh' | 'max';
  /** What the agent may reach besides the model (`--sandbox bwrap` enforces it; nothing else can). */
  network?: AgentNetwork;
  /**
   * MCP servers the agent connects to (streamable HTTP), each with its toolset's policy; the CLI names
   * their tools `mcp__<name>__<tool>`. Absent: no MCP policy (a group's own bus is not governed here).
   */
  mcp_servers?: AgentMcpServer[];
}

/** Whether an MCP tool may be used, and whether each use waits for a confirmation. */
export interface McpToolRule {
  enabled: boolean;
  policy: 'always_allow' | 'always_ask';
}

/** One MCP server of an agent and its toolset (`mcp_toolset`) as the tool policy reads it. */
export interface AgentMcpServer {
  /** Letters, digits, `_` and `-`, never `__` (the separator of the CLI's tool names). */
  name: string;
  url: string;
  /** The rule of a tool without one of its own in `tools`. */
  default: McpToolRule;
  /** Rules by the tool's own name (not the CLI's `mcp__...` one). */
  tools: Record<string, McpToolRule>;
}

export interface AgentNetwork {
  /** Hosts reachable over HTTPS through Berth's egress proxy: `example.com`, or `*.example.com`. */
  allowed_domains: string[];
}

export interface SessionRecord {
  id: string;
  tenant: string;
  title: string | null;
  metadata: Record<string, string>;
  pattern: Pattern;
  agent: AgentConfig;
  status: SessionStatus;
  /** The SDK's session UUID: the transcript's key in the SessionStore, and what `resume` takes. */
  sdkSessionId: string;
  /** True once the SDK has written a transcript for this session, so the next spawn must resume it. */
  started: boolean;
  /** Epoch milliseconds. */
  createdAt: number;
  updatedAt: number;
  usage: Usage;
  turns: number;
  /** What the Managed Agents API knows of the session besides the above; absent for a group's agents. */
  managed?: ManagedSessionFields | undefined;
}

/** A session's Managed Agents fields, stored as one JSON value. */
export interface ManagedSessionFields {
  /** The agent and the version the session was created with (it does not follow later updates). */
  agent: { id: string; version: number } | null;
  environment_id: string;
  /** Epoch ms, or null while not archived. */
  archived_at: number | null;
  /** A cost limit in the smallest unit of the currency (cents of USD), or null for none. */
  budget: { max_list_cost_cents: number } | null;
  /** When the session was created with overrides of its agent (`agent_with_overrides`), what they were. */
  overrides?: Record<string, unknown> | undefined;
}

/**
 * Names one session. Session ids are unique per tenant, not globally: a tenant can neither squat an id
 * another tenant wants nor learn, from a conflict, that another tenant uses it.
 */
export interface SessionRef {
  tenant: string;
  id: string;
}

/** The event log's key of a session (`/` appears in neither part, see ID_PATTERN). */
export function sessionKey(ref: SessionRef): string {
  return `${ref.tenant}/${ref.id}`;
}

export type { ListPage } from './list-cursor.js';
export type {
  Catalog,
  CatalogEntry,
  CatalogKind,
  CatalogListOptions,
  CatalogRef,
  NewCatalogEntry,
} from './catalog.js';

export type { Fence, StoreCallOptions } from './call-options.js';

export interface SessionRegistry {
  /** Throws `BerthError('session_exists')` when the tenant already has a session with this id. */
  create(record: SessionRecord, options?: StoreCallOptions): Promise<void>;
  /** The record, or undefined. */
  get(ref: SessionRef, options?: StoreCallOptions): Promise<SessionRecord | undefined>;
  /** The tenant's sessions, newest first. */
  list(
    tenant: string,
    options: { limit: number; cursor?: string | undefined } & StoreCallOptions,
  ): Promise<ListPage<SessionRecord>>;
  /** Applies the patch and bumps `updatedAt`; a no-op for an unknown id. */
  update(
    ref: SessionRef,
    patch: Partial<Omit<SessionRecord, 'id' | 'tenant' | 'createdAt'>>,
    options?: StoreCallOptions,
  ): Promise<void>;
  /** Removes the record; a no-op for an unknown id. */
  delete(ref: SessionRef, options?: StoreCallOptions): Promise<void>;
}

/** Events of all sessions, keyed by {@link sessionKey}. */
export interface EventLog {
  /**
   * Stores events whose `seq` the caller assigned (strictly increasing per session), all or none. A seq
   * the log already holds, or one repeated in the batch, fails the whole batch with
   * `BerthError('event_seq_conflict')` and stores none of it.
   */
  append(sessionId: string, events: StoredEvent[], options?: StoreCallOptions): Promise<void>;
  /** Events with `seq > after`, oldest first, at most `limit`. */
  list(
    sessionId: string,
    options: { after: number; limit: number } & StoreCallOptions,
  ): Promise<StoredEvent[]>;
  /** The highest stored `seq`, or 0. */
  lastSeq(sessionId: string, options?: StoreCallOptions): Promise<number>;
  deleteSession(sessionId: string, options?: StoreCallOptions): Promise<void>;
}

/**
 * The SDK's `SessionStore` with every optional method (`listSessions`, `listSessionSummaries`, `delete`,
 * `listSubkeys`) required: what each of Berth's adapters is, and what every store a `--store` URL opens
 * is. The SDK lets a store leave them out (a store without `delete` makes deleting a no-op), so other
 * stores that Berth takes (the durable mirror's backend) stay plain `SessionStore`s; Berth's adapters
 * declare this type so that one that lost a method does not compile, and their conformance runs use
 * `requireAll` so that it does not pass either.
 */
export type CompleteSessionStore = Required<SessionStore>;

/**
 * Everything one `--store URL` names: where transcripts, the session registry, the event log and the
 * catalog (agents and environments) live.
 */
export interface Stores {
  transcriptStore: CompleteSessionStore;
  registry: SessionRegistry;
  eventLog: EventLog;
  catalog: Catalog;
  /** True when another host sharing this store can resume this host's sessions (not memory or SQLite). */
  shared: boolean;
  /**
   * Host registry and session leases with fencing (PostgreSQL and Redis: they have atomic compare-and-set);
   * absent on stores that cannot run many hosts. When present, the registry's `update`, the event log's
   * `append` and the transcript store's `append` honour {@link StoreCallOptions.fence}.
   */
  coordination?: Coordination;
  /** Releases connections; idempotent. */
  close(): Promise<void>;
  /**
   * Deletes everything under this URL's namespace: every transcript, record, event and catalog entry,
   * and the namespace itself (the PostgreSQL schema, the SQLite file, the Redis keys under the prefix, the
   * S3 objects under the prefix). For tests and `berth conformance`, which run on isolated namespaces (see
   * `isolatedStoreUrl`). Only `close()` may follow it.
   */
  destroy?(): Promise<void>;
}
