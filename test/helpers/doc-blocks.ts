/**
 * Reads the examples of a Markdown document so that a test can run them: its fenced code blocks, the
 * `curl` commands of a shell block (with the `# -> ...` comment that shows what one answers), and the
 * shapes examples answer with: JSON with `...` elisions, an HTTP response (`curl -i`), SSE frames.
 *
 * The parsers are tolerant of what documentation writes (a flag they do not know is skipped, a pipe
 * into `jq` is kept aside) and strict about what would make a check meaningless (a command that is not
 * `curl`, a block that does not parse, throws).
 */

/** A fenced code block. */
export interface DocBlock {
  /** The info string's first word (`sh`, `json`, `ts`), `''` for a plain fence. */
  lang: string;
  /** The lines between the fences, joined with `\n`. */
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** 1-based line of the closing fence. */
  endLine: number;
  /** The nearest heading above the block (its text without the `#`s), `''` before the first. */
  heading: string;
  /** How many headings come before the block: two blocks with no heading between share it. */
  section: number;
  /** The prose between the previous block (or heading, if nearer) and this one. */
  before: string;
  /** The prose between this block and the next block or heading. */
  after: string;
}

/** Every fenced block of `markdown`, in order. A fence left open throws. */
export function parseBlocks(markdown: string): DocBlock[] {
  const lines = markdown.split('\n');
  const blocks: DocBlock[] = [];
  let heading = '';
  let section = 0;
  let prose: string[] = [];
  let previous: DocBlock | undefined;
  const endProse = (): string => {
    const text = prose.join('\n').trim();
    if (previous) previous.after = text;
    previous = undefined;
    prose = [];
    return text;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^(\s*)(```+|~~~+)\s*([^\s`]*)/.exec(line);
    if (!fence) {
      const h = /^#{1,6}\s+(.*)$/.exec(line);
      if (h) {
        endProse();
        heading = h[1]!.trim();
        section++;
      } else prose.push(line);
      continue;
    }
    const [, indent, marker, lang] = fence;
    const body: string[] = [];
    let end = i + 1;
    while (end < lines.length && !lines[end]!.trimStart().startsWith(marker!)) {
      body.push(lines[end]!.slice(Math.min(indent!.length, lines[end]!.search(/\S|$/))));
      end++;
    }
    if (end >= lines.length) throw new Error(`line ${i + 1}: a fenced block is never closed`);
    const before = endProse();
    previous = {
      lang: lang ?? '',
      text: body.join('\n'),
      line: i + 1,
      endLine: end + 1,
      heading,
      section,
      before,
      after: '',
    };
    blocks.push(previous);
    i = end;
  }
  endProse();
  return blocks;
}

/** One command of a shell block. */
export interface ShellCommand {
  /** The command's words, quotes removed (a quoted word may span lines). */
  argv: string[];
  /** What follows a `|`, as written (e.g. `jq '.paths | keys'`). */
  pipe: string | undefined;
  /**
   * The text of a `# -> ...` comment after the command, with the comment lines that continue it (up to a
   * blank line) joined with `\n`.
   */
  output: string | undefined;
  /** Every comment line between this command and the next, without its `#`, trimmed. */
  comments: string[];
  /** 1-based line in the block where the command starts. */
  line: number;
}

/** Splits a shell block into commands: `\`-continued lines, quotes over lines, `#` comments. */
export function parseShell(text: string): ShellCommand[] {
  const commands: ShellCommand[] = [];
  let i = 0;
  let line = 1;
  let current: ShellCommand | undefined;
  let word: string | undefined;
  let outputOpen = false;
  const endWord = () => {
    if (word !== undefined) current!.argv.push(word);
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    if (current && current.argv.length > 0) commands.push(current);
    current = undefined;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (!current) {
      if (c === '\n') line++;
      // A blank line ends a `# ->` comment: what follows is about the next command.
      if (c === '\n' && text[i - 1] === '\n') outputOpen = false;
      if (/\s/.test(c)) {
        i++;
        continue;
      }
      if (c === '#') {
        const end = text.indexOf('\n', i);
        const comment = text.slice(i + 1, end < 0 ? text.length : end).trim();
        const last = commands.at(-1);
        last?.comments.push(comment);
        if (last && comment.startsWith('->')) {
          last.output = comment.slice(2).trim();
          outputOpen = true;
        } else if (last?.output !== undefined && outputOpen) {
          last.output += `\n${comment}`;
        }
        i = end < 0 ? text.length : end;
        continue;
      }
      current = { argv: [], pipe: undefined, output: undefined, comments: [], line };
    }
    if (c === '\\' && text[i + 1] === '\n') {
      endWord();
      line++;
      i += 2;
    } else if (c === '\n') {
      endCommand();
      line++;
      i++;
    } else if (/\s/.test(c)) {
      endWord();
      i++;
    } else if (c === '|') {
      endWord();
      const end = text.indexOf('\n', i);
      current.pipe = text.slice(i + 1, end < 0 ? text.length : end).trim();
      i = end < 0 ? text.length : end;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`line ${line}: an unclosed ' quote`);
      const quoted = text.slice(i + 1, end);
      line += quoted.split('\n').length - 1;
      word = (word ?? '') + quoted;
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let quoted = '';
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\' && '"\\$`'.includes(text[j + 1] ?? '')) j++;
        quoted += text[j];
        j++;
      }
      if (j >= text.length) throw new Error(`line ${line}: an unclosed " quote`);
      line += quoted.split('\n').length - 1;
      word = (word ?? '') + quoted;
      i = j + 1;
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  endCommand();
  return commands;
}

/** The HTTP request a `curl` command sends. */
export interface CurlRequest {
  method: string;
  /** Path and query, as written (`/v1/sessions?limit=10`). */
  path: string;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string | undefined;
  /** `-N`: the answer is a stream, read as it comes. */
  stream: boolean;
  /** `-i`: the example shows the status line and headers. */
  includeHeaders: boolean;
}

/** Short flags that take a value, and the long names this parser knows. */
const CURL_VALUE_FLAGS: Record<string, string> = {
  X: 'request',
  H: 'header',
  d: 'data',
  '-request': 'request',
  '-header': 'header',
  '-data': 'data',
  '-data-raw': 'data',
  '-json': 'json',
};
const CURL_SWITCHES: Record<string, string> = { N: 'no-buffer', i: 'include', '-no-buffer': 'no-buffer' };

/** The request of a `curl` command (`argv` as {@link parseShell} splits it). Unknown switches are skipped. */
export function parseCurl(argv: readonly string[]): CurlRequest {
  if (argv[0] !== 'curl') throw new Error(`not a curl command: ${argv.join(' ')}`);
  const request: CurlRequest = {
    method: '',
    path: '',
    headers: {},
    body: undefined,
    stream: false,
    includeHeaders: false,
  };
  let url: string | undefined;
  const apply = (option: string, value: string | undefined) => {
    if (option === 'request') request.method = value!.toUpperCase();
    else if (option === 'header') {
      const colon = value!.indexOf(':');
      request.headers[value!.slice(0, colon).trim().toLowerCase()] = value!.slice(colon + 1).trim();
    } else if (option === 'data') request.body = value;
    else if (option === 'json') {
      request.body = value;
      request.headers['content-type'] ??= 'application/json';
    } else if (option === 'no-buffer') request.stream = true;
    else if (option === 'include') request.includeHeaders = true;
  };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) {
      url = arg;
      continue;
    }
    if (arg.startsWith('--')) {
      const name = arg.slice(1);
      if (name in CURL_VALUE_FLAGS) apply(CURL_VALUE_FLAGS[name]!, argv[++i]);
      else apply(CURL_SWITCHES[name] ?? '', undefined);
      continue;
    }
    // A cluster of short flags (`-si`); one that takes a value takes the rest of the word, or the next.
    for (let j = 1; j < arg.length; j++) {
      const flag = arg[j]!;
      if (flag in CURL_VALUE_FLAGS) {
        apply(CURL_VALUE_FLAGS[flag]!, j + 1 < arg.length ? arg.slice(j + 1) : argv[++i]);
        break;
      }
      apply(CURL_SWITCHES[flag] ?? '', undefined);
    }
  }
  if (url === undefined) throw new Error(`a curl command without a URL: ${argv.join(' ')}`);
  const parsed = new URL(/^[a-z]+:\/\//i.test(url) ? url : `http://${url}`);
  // The query is kept as written: `statuses[]` must reach the server as the example spells it.
  const query = url.includes('?') ? url.slice(url.indexOf('?')) : '';
  request.path = parsed.pathname + query;
  request.method ||= request.body === undefined ? 'GET' : 'POST';
  return request;
}

/** Marks where `...` elided part of a JSON example (see {@link parseElidedJson}). */
export interface ElidedJson {
  value: unknown;
  /** Whether `...` elided anything outside strings (the example is not the whole answer). */
  elided: boolean;
}

/**
 * Parses JSON as documentation writes it: `...` outside strings elides members or items (`{"id": "x",
 * ...}`, `[{ ... }]`, `{ ... }`), and is dropped with its comma. `...` inside a string is kept: what it
 * means there (a shortened value) is the reader's business.
 */
export function parseElidedJson(text: string): ElidedJson {
  let out = '';
  let elided = false;
  let gap = '';
  const flushGap = () => {
    if (gap.includes('...')) elided = true;
    out += gap
      .replaceAll('...', '')
      .replace(/,(\s*,)+/g, ',')
      .replace(/([{[])\s*,/g, '$1')
      .replace(/,(\s*[}\]])/g, '$1');
    gap = '';
  };
  for (let i = 0; i < text.length;) {
    if (text[i] !== '"') {
      gap += text[i];
      i++;
      continue;
    }
    let j = i + 1;
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    // A string between two elisions (`..., "a": 1, ...`) is inside one gap's context: keep the commas right.
    flushGap();
    out += text.slice(i, j + 1);
    i = j + 1;
  }
  flushGap();
  // A comma left dangling before a closing bracket across a string boundary (`"a", ...}`).
  return { value: JSON.parse(out.replace(/,(\s*[}\]])/g, '$1')), elided };
}

/** An HTTP response as `curl -i` prints it. */
export interface DocHttpResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
}

export function parseHttpResponse(text: string): DocHttpResponse {
  const [head = '', ...rest] = text.split(/\r?\n\r?\n/);
  const [statusLine = '', ...headerLines] = head.split(/\r?\n/);
  const status = /^HTTP\/[\d.]+ (\d{3})/.exec(statusLine);
  if (!status) throw new Error(`not an HTTP response: ${statusLine}`);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(status[1]), headers, body: rest.join('\n\n') };
}

/** One Server-Sent Events frame. */
export interface DocSseFrame {
  event: string | undefined;
  id: string | undefined;
  data: string;
}

/** The frames of an SSE example: blank-line separated `event:`, `id:` and `data:` lines; comments skipped. */
export function parseSseFrames(text: string): DocSseFrame[] {
  const frames: DocSseFrame[] = [];
  for (const chunk of text.split(/\n\s*\n/)) {
    const frame: DocSseFrame = { event: undefined, id: undefined, data: '' };
    const data: string[] = [];
    for (const line of chunk.split('\n')) {
      const field = /^(event|id|data):\s?(.*)$/.exec(line);
      if (!field) continue;
      if (field[1] === 'data') data.push(field[2]!);
      else frame[field[1] as 'event' | 'id'] = field[2]!.trim();
    }
    frame.data = data.join('\n');
    if (frame.event !== undefined || data.length > 0) frames.push(frame);
  }
  return frames;
}
