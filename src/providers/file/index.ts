import { statSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { watch as chokidarWatch } from 'chokidar';
import { parse as parseDotenv } from 'dotenv';
import YAML from 'yaml';
import { SkError } from '../../errors.js';
import { fingerprint } from '../../fingerprint.js';
import type { SecretRef } from '../../refs.js';
import type { Backends } from '../../spec.js';
import type {
  ChangeListener,
  FetchResult,
  Provider,
  ProviderContext,
  ProviderFactory,
  SecretValue,
} from '../types.js';
import { type FileParseMode, fileBackend } from './descriptor.js';

export { FILE_PARSE_MODES, type FileParseMode } from './descriptor.js';

/** A secret file larger than this is refused (it would not fit the agent's small tmpfs anyway). */
export const FILE_MAX_BYTES = 4 * 1024 * 1024;
/** Events for one ref arriving within this window are reported once. */
const WATCH_DEBOUNCE_MS = 30;
/** How often watched directories that are missing (or may vanish) are checked for existence. */
const ROOT_POLL_MS = 1000;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The `file:` provider: `file:<path>[?parse=yaml|json|env|none][#key]`, for the local file-mode.
 *
 * - `.yaml`/`.yml`, `.json`, `.env` and `.env*` files are parsed into a map (`#a.b` selects into it);
 *   any other file is returned as bytes.
 * - A directory becomes a map of file name → content (dotfiles and subdirectories skipped), which is
 *   also how a mounted Kubernetes Secret or ConfigMap looks.
 * - Relative paths resolve against `backends.file.baseDir` (the spec file's directory by default).
 * - The version is a keyed fingerprint of the content (src/fingerprint.ts): stable within the process,
 *   not a plain hash a short password could be guessed from.
 */
export const fileProvider: ProviderFactory = {
  name: 'file',
  validateRef: fileBackend.validateRef,
  create(backends: Backends): Provider {
    return new FileProvider(backends.file?.baseDir ?? process.cwd());
  },
};

class FileProvider implements Provider {
  readonly name = 'file';
  constructor(readonly baseDir: string) {}

  resolve(ref: SecretRef): string {
    return path.resolve(this.baseDir, ref.locator);
  }

  async fetch(ref: SecretRef, _ctx: ProviderContext): Promise<FetchResult> {
    fileProvider.validateRef(ref, ref.raw);
    const p = this.resolve(ref);
    const st = await stat(p).catch((e: unknown) => {
      throw fsError(e, ref, p);
    });
    if (st.isDirectory()) return readDirectory(ref, p);
    if (!st.isFile()) {
      throw new SkError('SK_ERR_SOURCE_UNREADABLE', `${ref.raw}: ${p} is not a regular file or directory`, {
        where: ref.raw,
      });
    }
    if (st.size > FILE_MAX_BYTES) throw tooBig(ref, p);
    const bytes = await readFile(p).catch((e: unknown) => {
      throw fsError(e, ref, p);
    });
    const mode = (ref.options.parse as FileParseMode | undefined) ?? guessMode(p);
    const value = mode === 'none' ? ({ kind: 'bytes', bytes } as const) : parseMap(ref, p, bytes, mode);
    return { value, version: fingerprint(bytes) };
  }

  watch(refs: readonly SecretRef[], onChange: ChangeListener, ctx: ProviderContext): () => Promise<void> {
    // Watching a file's parent directory (not the file) survives editors and tools that replace the
    // file by rename, and notices a file that appears later.
    const fileTargets = new Map<string, SecretRef[]>();
    const dirTargets = new Map<string, SecretRef[]>();
    for (const ref of refs) {
      const p = this.resolve(ref);
      const isDir = (() => {
        try {
          return statSync(p).isDirectory();
        } catch {
          return false;
        }
      })();
      const m = isDir ? dirTargets : fileTargets;
      m.set(p, [...(m.get(p) ?? []), ref]);
    }
    const roots = new Set<string>([
      ...[...fileTargets.keys()].map((p) => path.dirname(p)),
      ...dirTargets.keys(),
    ]);
    if (roots.size === 0) return async () => {};

    const timers = new Map<SecretRef, NodeJS.Timeout>();
    const fire = (ref: SecretRef) => {
      clearTimeout(timers.get(ref));
      timers.set(
        ref,
        setTimeout(() => {
          timers.delete(ref);
          onChange(ref);
        }, WATCH_DEBOUNCE_MS),
      );
    };
    // In a mounted Secret/ConfigMap the visible files are symlinks through `..data`, which the kubelet
    // swaps atomically: the files themselves never change, so a `..*` entry changing next to a watched
    // file counts as a change of every watched file in that directory.
    const filesIn = (dir: string) =>
      [...fileTargets].filter(([f]) => path.dirname(f) === dir).flatMap(([, refs]) => refs);
    const fileDirs = new Set([...fileTargets.keys()].map((f) => path.dirname(f)));
    const isSwapEntry = (p: string) => path.basename(p).startsWith('..') && fileDirs.has(path.dirname(p));
    const watcher = chokidarWatch([...roots], {
      ignoreInitial: true,
      depth: 0,
      awaitWriteFinish: { stabilityThreshold: 40, pollInterval: 10 },
      ignored: (p: string) =>
        !(roots.has(p) || fileTargets.has(p) || dirTargets.has(path.dirname(p)) || isSwapEntry(p)),
    });
    watcher.on('all', (event, p) => {
      const hit = [
        ...(fileTargets.get(p) ?? []),
        ...(dirTargets.get(p) ?? []),
        ...(dirTargets.get(path.dirname(p)) ?? []),
        ...(isSwapEntry(p) ? filesIn(path.dirname(p)) : []),
      ];
      if (hit.length > 0)
        ctx.log.debug({ event, path: p, refs: hit.map((r) => r.raw) }, 'file source changed');
      for (const ref of hit) fire(ref);
    });
    watcher.on('error', (e) => {
      ctx.log.warn({ err: { code: (e as NodeJS.ErrnoException).code } }, 'file watcher error');
    });
    // chokidar cannot watch a directory that does not exist yet, and loses one that is removed and
    // re-created: check each root's identity (inode + birth time) every second and re-arm on a change.
    const identity = (root: string) => {
      const st = statSync(root, { throwIfNoEntry: false });
      return st ? `${st.ino}:${st.birthtimeMs}` : '';
    };
    const seen = new Map([...roots].map((r) => [r, identity(r)] as const));
    const refsUnder = (root: string) => [...(dirTargets.get(root) ?? []), ...filesIn(root)];
    const poll = setInterval(() => {
      for (const [root, was] of seen) {
        const is = identity(root);
        if (is === was) continue;
        seen.set(root, is);
        ctx.log.debug(
          { path: root, exists: is !== '' },
          'watched directory appeared, vanished or was replaced',
        );
        if (is !== '') {
          watcher.unwatch(root);
          watcher.add(root);
        }
        for (const ref of refsUnder(root)) fire(ref);
      }
    }, ROOT_POLL_MS);
    poll.unref();
    return async () => {
      clearInterval(poll);
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await watcher.close();
    };
  }
}

function guessMode(p: string): FileParseMode {
  const base = path.basename(p).toLowerCase();
  const ext = path.extname(base);
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.json') return 'json';
  if (ext === '.env' || base.startsWith('.env')) return 'env';
  return 'none';
}

/** Parse a file into a map. Errors name the file and line, never its content. */
function parseMap(
  ref: SecretRef,
  p: string,
  bytes: Buffer,
  mode: Exclude<FileParseMode, 'none'>,
): SecretValue {
  const unreadable = (why: string): never => {
    throw new SkError('SK_ERR_SOURCE_UNREADABLE', `${ref.raw}: ${p} ${why}`, { where: ref.raw });
  };
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return unreadable('is not UTF-8 text');
  }
  let data: unknown;
  if (mode === 'yaml') {
    const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true });
    const err = doc.errors[0];
    if (err) {
      // Only the code and position: YAML messages can quote the offending text.
      return unreadable(`is not valid YAML (${err.code} at line ${lineOf(text, err.pos[0])})`);
    }
    try {
      data = doc.toJS({ maxAliasCount: 100 });
    } catch {
      // The one failure here is the alias limit (a "billion laughs" file); its message names nothing.
      return unreadable('is not usable YAML (its aliases expand too far)');
    }
  } else if (mode === 'json') {
    try {
      data = JSON.parse(text);
    } catch (e) {
      const pos = /position (\d+)/.exec((e as Error).message)?.[1];
      return unreadable(`is not valid JSON${pos ? ` (line ${lineOf(text, Number(pos))})` : ''}`);
    }
  } else {
    data = parseDotenv(text);
  }
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    return unreadable(`must hold a mapping of keys at the top level (${mode})`);
  }
  return { kind: 'map', data: data as Record<string, unknown> };
}

async function readDirectory(ref: SecretRef, dir: string): Promise<FetchResult> {
  const entries = await readdir(dir).catch((e: unknown) => {
    throw fsError(e, ref, dir);
  });
  const data: Record<string, string | Buffer> = {};
  const parts: Buffer[] = [];
  let total = 0;
  for (const name of entries.sort()) {
    if (name.startsWith('.')) continue;
    const p = path.join(dir, name);
    // stat, not lstat: a mounted Secret's files are symlinks into ..data
    const st = await stat(p).catch(() => undefined);
    if (!st?.isFile()) continue;
    total += st.size;
    if (total > FILE_MAX_BYTES) throw tooBig(ref, dir);
    const bytes = await readFile(p).catch((e: unknown) => {
      throw fsError(e, ref, p);
    });
    let v: string | Buffer;
    try {
      v = utf8.decode(bytes);
    } catch {
      v = bytes;
    }
    data[name] = v;
    parts.push(Buffer.from(`${name}\0${bytes.length}\0`), bytes);
  }
  return { value: { kind: 'map', data }, version: fingerprint(parts) };
}

function lineOf(text: string, pos: number): number {
  return text.slice(0, Math.max(0, pos)).split('\n').length;
}

function tooBig(ref: SecretRef, p: string): SkError {
  return new SkError('SK_ERR_SOURCE_UNREADABLE', `${ref.raw}: ${p} is larger than ${FILE_MAX_BYTES} bytes`, {
    where: ref.raw,
  });
}

function fsError(e: unknown, ref: SecretRef, p: string): SkError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new SkError('SK_ERR_SOURCE_NOT_FOUND', `${ref.raw}: ${p} does not exist`, { where: ref.raw });
  }
  return new SkError('SK_ERR_SOURCE_UNREADABLE', `${ref.raw}: cannot read ${p} (${code})`, {
    where: ref.raw,
  });
}
