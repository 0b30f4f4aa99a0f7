import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { type ErrorCode, SkError } from './errors.js';
import { fingerprint } from './fingerprint.js';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';
import { STATUS_FILE_NAME, validateRelativePath } from './paths.js';

/** The symlink that names the live generation; readers see files through it. */
export const DATA_DIR = '..data';
/** The symlink built next to `..data` and renamed over it (the atomic step). */
export const DATA_TMP = '..data_tmp';
/** The status file in the output directory (no values). */
export const STATUS_FILE = STATUS_FILE_NAME;

/** Generation directories: `..YYYY_MM_DD_HH_MM_SS.<random>`. */
const GENERATION_RE = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\./;
const STATUS_TMP_PREFIX = `..${STATUS_FILE}.`;
const DIR_MODE = 0o755;
const STATUS_MODE = 0o444;

/** One file of the set: its bytes and its permission bits. */
export interface FileProjection {
  readonly data: Buffer;
  /** Permission bits, 0–0777 (the spec's per-secret mode, default 0440). */
  readonly mode: number;
}

/** The whole file set, keyed by relative path under the output directory. */
export type Payload = ReadonlyMap<string, FileProjection>;

export interface WriteResult {
  /** Whether a new generation was written (false: the payload equals what is on disk). */
  readonly written: boolean;
  /** Paths added, changed (content or mode) or removed, sorted. Empty when nothing was written. */
  readonly changed: readonly string[];
  /** Name of the live generation directory after the call. */
  readonly generation: string;
}

export interface WriterOptions {
  /** The output directory (created if absent). */
  readonly dir: string;
  /** Owner applied to files where permitted (running as root); see {@link AtomicWriter}. */
  readonly uid?: number;
  readonly gid?: number;
  readonly log?: Logger;
  /**
   * How long a replaced generation stays on disk (ms, default 1000). A reader that resolved `..data`
   * just before the swap is still walking the old generation's path; removing it at once (as kubelet
   * does) makes that reader see ENOENT.
   */
  readonly graceMs?: number;
}

/** The last error of a secret, as recorded in the status file. Messages never carry values. */
export interface StatusError {
  readonly code: ErrorCode;
  readonly message: string;
  /** ISO time. */
  readonly at: string;
}

/** One secret in the status file: what is on disk and how fresh it is, never the value. */
export interface SecretStatus {
  /** Relative path of the file under the output directory. */
  readonly file: string;
  /** The provider's version of the value on disk (a backend version id or a content hash). */
  readonly version?: string;
  /**
   * A keyed fingerprint of the rendered file (see `fingerprint` in src/fingerprint.ts): equal within
   * one agent process for equal content; not comparable across processes, and no offline guessing.
   */
  readonly fingerprint?: string;
  /** ISO time the value on disk was fetched. */
  readonly fetchedAt?: string;
  /** ISO time the file's content last changed (or this agent process first wrote it). */
  readonly changedAt?: string;
  /** Set while the secret is failing to refresh; cleared by the next success. */
  readonly lastError?: StatusError;
  /** True once a failing secret has been failing for longer than max-stale (action keep). */
  readonly stale?: boolean;
  /** The lease of a dynamic secret. */
  readonly lease?: { readonly ttlSeconds: number; readonly expiresAt: string; readonly renewable: boolean };
  /** A backend call for this secret still running when the status was written: what, since when. */
  readonly inFlight?: { readonly call: string; readonly since: string };
}

/** `.sidekey-status.json`. */
export interface StatusDocument {
  /** `sidekey.io/v1`. */
  readonly apiVersion: string;
  /** True once every secret has a value on disk. */
  readonly ready: boolean;
  /** ISO time of this status. */
  readonly updatedAt: string;
  readonly secrets: Readonly<Record<string, SecretStatus>>;
}

/**
 * A file as the writer compares it. `fp` is keyed per process; the live generation is re-read and
 * fingerprinted with the current key after a restart, so a restart alone never rewrites anything.
 */
interface Fingerprint {
  readonly fp: string;
  readonly mode: number;
}

/**
 * Writes a set of files into one directory so that readers only ever see a complete, consistent set:
 * the design of kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go), reimplemented.
 *
 * Layout of the output directory:
 * ```
 * <dir>/..2026_01_02_03_04_05.ab12cd/   the generation: real files, with their modes
 * <dir>/..data -> ..2026_01_02_03_04_05.ab12cd
 * <dir>/db-password -> ..data/db-password      (user-visible names are symlinks through ..data)
 * <dir>/tls -> ..data/tls                      (nested paths: one symlink for the top-level dir)
 * <dir>/.sidekey-status.json                   (regular file, replaced by rename, no values)
 * ```
 *
 * The write algorithm ({@link AtomicWriter.write}):
 *  1. Validate the payload: every path through `validateRelativePath` again (defence in depth), no
 *     reserved name (`..*`, the status file), no file that is also a directory of another, modes in
 *     0–0777, and no user-visible name already taken by something that is not our symlink.
 *  2. Read the `..data` symlink to find the live generation.
 *  3. Fingerprint the live generation (keyed fingerprint and mode per file; cached from the last write,
 *     read from disk otherwise, e.g. after a restart).
 *  4. Compare: if the payload equals the live generation, only make sure the user-visible symlinks
 *     exist and return without writing.
 *  5. Create a fresh hidden generation directory `..<timestamp>.<random>` (mode 0755).
 *  6. Write every file into it (exclusive create, explicit chmod so the umask does not matter,
 *     chown where permitted, fsync), then fsync the directories.
 *  7. Create the symlink `..data_tmp` pointing at the new generation.
 *  8. Rename `..data_tmp` over `..data`: rename(2) is atomic, so a reader resolves either the old or
 *     the new generation, never a mix and never nothing. Then fsync the output directory.
 *  9. Create the user-visible symlinks `name -> ..data/name` that do not exist yet (for a nested path,
 *     its top-level directory). Done after the swap, so a new name never dangles.
 * 10. Remove user-visible symlinks whose names are no longer in the payload.
 * 11. Retire the previous generation: it is removed once it has been replaced for `graceMs`, on a
 *     later write or by a timer, so a reader that resolved `..data` just before the swap can still
 *     open its files. Generations and temp files a crash left behind are removed at once.
 *
 * A failure in steps 5–8 removes the new generation and leaves the old one live. A failure in step 9
 * is an SK_ERR_WRITE although the new set is live (a new name may be missing; the next write retries
 * it). Failures in 10–11 are logged and do not fail the write: the new set is live and complete.
 *
 * Ownership: with `uid`/`gid` set, files are chowned. When that is not permitted (EPERM) and the
 * process is not root, it is skipped and logged at debug (a laptop running `sidekey dev`); as root an
 * EPERM is an error.
 *
 * Not safe for concurrent use: the engine serialises writes. One writer per directory.
 */
export class AtomicWriter {
  readonly dir: string;
  readonly #uid: number | undefined;
  readonly #gid: number | undefined;
  readonly #log: Logger;
  /** Fingerprints of the generation this writer last wrote (saves re-reading it). */
  #cache: { generation: string; files: Map<string, Fingerprint> } | undefined;
  #chownSkipped = false;
  readonly #graceMs: number;
  /** Replaced generations → when they were replaced (epoch ms). */
  readonly #retired = new Map<string, number>();
  #cleanupTimer: NodeJS.Timeout | undefined;

  constructor(opts: WriterOptions) {
    this.dir = path.resolve(opts.dir);
    this.#uid = opts.uid;
    this.#gid = opts.gid;
    this.#log = opts.log ?? silentLogger;
    this.#graceMs = opts.graceMs ?? 1000;
  }

  /** Write the payload as the new file set, if it differs from the live one. */
  async write(payload: Payload): Promise<WriteResult> {
    // (1) validate
    const clean = this.#validate(payload);
    await this.#mkdirOut();
    await this.#checkVisibleNames(clean);

    // (2) the live generation: only a generation directory of this one; a `..data` pointing anywhere
    // else (planted, or another tool's) is never read, and the swap replaces it.
    const dataPath = path.join(this.dir, DATA_DIR);
    let oldGen = await readlinkOrUndefined(dataPath, 'the ..data symlink');
    if (oldGen !== undefined && !isGeneration(oldGen)) {
      this.#log.warn(
        { dir: this.dir },
        '..data does not point at a generation of this directory; replacing it',
      );
      oldGen = undefined;
    }

    // (3) fingerprint it
    const oldFiles = oldGen === undefined ? new Map<string, Fingerprint>() : await this.#fingerprints(oldGen);

    // (4) compare
    const newFiles = new Map<string, Fingerprint>();
    for (const [p, f] of clean) newFiles.set(p, { fp: fingerprint(f.data), mode: f.mode });
    const changed = diff(oldFiles, newFiles);
    if (oldGen !== undefined && changed.length === 0) {
      await this.#linkVisible(clean);
      // (11) also here: a restarted agent finds its predecessor's leftovers
      await this.#sweep(oldGen);
      this.#log.debug({ dir: this.dir, generation: oldGen }, 'files unchanged, nothing written');
      return { written: false, changed: [], generation: oldGen };
    }

    // (5) a fresh generation directory
    const genPath = await this.#mkGeneration();
    const gen = path.basename(genPath);
    const tmpLink = path.join(this.dir, DATA_TMP);
    try {
      // (6) the payload, fsynced
      await this.#writePayload(genPath, clean);

      // (7) ..data_tmp -> new generation (a crash, or anything else, may have left one behind)
      await fs.rm(tmpLink, { force: true, recursive: true });
      await fs.symlink(gen, tmpLink);

      // (8) the atomic swap
      await fs.rename(tmpLink, dataPath);
    } catch (e) {
      await fs.rm(tmpLink, { force: true }).catch(() => {});
      await fs.rm(genPath, { recursive: true, force: true }).catch(() => {});
      throw writeError(e, `writing generation ${gen} in ${this.dir}`);
    }
    await fsyncDir(this.dir);
    this.#cache = { generation: gen, files: newFiles };

    // (9) user-visible symlinks
    await this.#linkVisible(clean);

    // (10) user-visible names no longer in the payload
    const keep = new Set([...clean.keys()].map(topLevel));
    for (const name of new Set([...oldFiles.keys()].map(topLevel))) {
      if (!keep.has(name)) await this.#unlinkVisible(name);
    }

    // (11) retire the previous generation; remove expired ones and leftovers of crashes
    if (oldGen !== undefined) this.#retired.set(oldGen, Date.now());
    await this.#sweep(gen);

    this.#log.debug({ dir: this.dir, generation: gen, changed }, 'files written');
    return { written: true, changed, generation: gen };
  }

  /**
   * Replace the status file: written to a temp file in the same directory, fsynced, then renamed over
   * `.sidekey-status.json`, so readers never see half a document. Mode 0444.
   */
  async writeStatus(status: StatusDocument): Promise<void> {
    await this.#mkdirOut();
    const tmp = path.join(this.dir, `${STATUS_TMP_PREFIX}${randomBytes(6).toString('hex')}.tmp`);
    try {
      await this.#writeFile(tmp, Buffer.from(`${JSON.stringify(status, null, 2)}\n`), STATUS_MODE);
      await fs.rename(tmp, path.join(this.dir, STATUS_FILE));
    } catch (e) {
      await fs.rm(tmp, { force: true }).catch(() => {});
      throw writeError(e, `writing ${STATUS_FILE} in ${this.dir}`);
    }
  }

  #validate(payload: Payload): Map<string, FileProjection> {
    const clean = new Map<string, FileProjection>();
    for (const [p, f] of payload) {
      const where = `file "${p}"`;
      validateRelativePath(p, where);
      if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o777) {
        throw new SkError('SK_ERR_MODE_INVALID', `${where}: mode ${f.mode} is not between 0 and 0777`, {
          where,
        });
      }
      if (!Buffer.isBuffer(f.data)) {
        throw new SkError('SK_ERR_INTERNAL', `${where}: the writer was given something other than bytes`);
      }
      clean.set(p, f);
    }
    for (const p of clean.keys()) {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        if (clean.has(prefix)) {
          throw new SkError('SK_ERR_PATH_INVALID', `file "${p}" is inside file "${prefix}"`, { where: p });
        }
      }
    }
    return clean;
  }

  async #mkdirOut(): Promise<void> {
    try {
      const first = await fs.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
      // mkdir honours the umask (0700 under umask 077): the directories this call created get the
      // documented 0755, so the app's user can traverse them. An existing directory keeps its mode.
      if (first !== undefined) {
        for (let d = this.dir; ; d = path.dirname(d)) {
          await fs.chmod(d, DIR_MODE);
          if (d === first || path.dirname(d) === d) break;
        }
      }
    } catch (e) {
      throw writeError(e, `creating the output directory ${this.dir}`);
    }
  }

  /** A user-visible name must be free, or already our symlink; never clobber the user's own files. */
  async #checkVisibleNames(clean: Map<string, FileProjection>): Promise<void> {
    for (const name of new Set([...clean.keys()].map(topLevel))) {
      const full = path.join(this.dir, name);
      const st = await fs.lstat(full).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw writeError(e, `checking ${full}`);
      });
      if (st && !st.isSymbolicLink()) {
        throw new SkError(
          'SK_ERR_WRITE',
          `${full} already exists and is not a sidekey symlink; remove it or choose another file name`,
          { where: name },
        );
      }
    }
  }

  async #fingerprints(gen: string): Promise<Map<string, Fingerprint>> {
    if (this.#cache?.generation === gen) return this.#cache.files;
    const files = new Map<string, Fingerprint>();
    const root = path.join(this.dir, gen);
    const walk = async (rel: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await fs.readdir(path.join(root, rel), { withFileTypes: true });
      } catch (e) {
        // A vanished or unreadable generation: everything counts as changed and gets rewritten.
        this.#log.debug(
          { dir: this.dir, generation: gen, err: (e as Error).message },
          'live generation unreadable',
        );
        return;
      }
      for (const ent of entries) {
        const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
        if (ent.isDirectory()) {
          await walk(r);
        } else if (ent.isFile()) {
          try {
            const full = path.join(root, r);
            const [data, st] = await Promise.all([fs.readFile(full), fs.stat(full)]);
            files.set(r, { fp: fingerprint(data), mode: st.mode & 0o777 });
          } catch {
            files.set(r, { fp: '', mode: -1 });
          }
        }
      }
    };
    await walk('');
    return files;
  }

  async #mkGeneration(): Promise<string> {
    const stamp = new Date().toISOString().slice(0, 19).replace(/[-T:]/g, '_');
    try {
      const dir = await fs.mkdtemp(path.join(this.dir, `..${stamp}.`));
      await fs.chmod(dir, DIR_MODE);
      return dir;
    } catch (e) {
      throw writeError(e, `creating a generation directory in ${this.dir}`);
    }
  }

  async #writePayload(genPath: string, clean: Map<string, FileProjection>): Promise<void> {
    const dirs = new Set<string>([genPath]);
    for (const [p, f] of clean) {
      const full = path.join(genPath, p);
      const parent = path.dirname(full);
      if (!dirs.has(parent)) {
        await fs.mkdir(parent, { recursive: true, mode: DIR_MODE });
        // mkdir honours the umask; the directories must be traversable by the app's user.
        for (let d = parent; d !== genPath && !dirs.has(d); d = path.dirname(d)) {
          await fs.chmod(d, DIR_MODE);
          dirs.add(d);
        }
      }
      await this.#writeFile(full, f.data, f.mode);
    }
    for (const d of dirs) await fsyncDir(d);
  }

  /** Exclusive create, write, chmod (the umask must not matter), chown where permitted, fsync. */
  async #writeFile(full: string, data: Buffer, mode: number): Promise<void> {
    const fh = await fs.open(full, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode);
      await this.#chown(fh, full);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async #chown(fh: fs.FileHandle, full: string): Promise<void> {
    if (this.#uid === undefined && this.#gid === undefined) return;
    try {
      await fh.chown(this.#uid ?? -1, this.#gid ?? -1);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPERM' && process.getuid?.() !== 0) {
        if (!this.#chownSkipped) {
          this.#chownSkipped = true;
          this.#log.debug(
            { dir: this.dir, uid: this.#uid, gid: this.#gid },
            'not permitted to change file owners (not root); keeping the current owner',
          );
        }
        return;
      }
      throw writeError(e, `changing the owner of ${full}`);
    }
  }

  async #linkVisible(clean: Map<string, FileProjection>): Promise<void> {
    for (const name of new Set([...clean.keys()].map(topLevel))) {
      const full = path.join(this.dir, name);
      const want = `${DATA_DIR}/${name}`;
      const have = await readlinkOrUndefined(full, full);
      if (have === want) continue;
      try {
        if (have === undefined) {
          await fs.symlink(want, full);
        } else {
          // A symlink to somewhere else (an older layout): replace it atomically.
          const tmp = path.join(this.dir, `..link.${randomBytes(6).toString('hex')}.tmp`);
          await fs.symlink(want, tmp);
          await fs.rename(tmp, full);
        }
      } catch (e) {
        throw writeError(e, `creating the symlink ${full}`);
      }
    }
  }

  async #unlinkVisible(name: string): Promise<void> {
    const full = path.join(this.dir, name);
    try {
      const have = await fs.readlink(full);
      // Only our own symlinks are removed.
      if (have === `${DATA_DIR}/${name}`) await fs.unlink(full);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.warn(
          { dir: this.dir, file: name, err: (e as Error).message },
          'could not remove an old file',
        );
      }
    }
  }

  /**
   * Remove retired generations whose grace has passed, and (`all`) anything else stale: generations
   * this writer never retired (a crash's, or a previous process's) and temp files. Only `write` sweeps
   * with `all`, because only it knows no generation is being built meanwhile.
   */
  async #sweep(live: string | undefined, all = true): Promise<void> {
    let entries: string[];
    try {
      entries = await fs.readdir(this.dir);
    } catch (e) {
      this.#log.warn({ dir: this.dir, err: (e as Error).message }, 'could not list the output directory');
      return;
    }
    const now = Date.now();
    for (const name of entries) {
      if (name === live) continue;
      const retiredAt = this.#retired.get(name);
      let remove: boolean;
      if (retiredAt !== undefined) remove = now - retiredAt >= this.#graceMs;
      else
        remove =
          all &&
          (GENERATION_RE.test(name) ||
            (name.startsWith(STATUS_TMP_PREFIX) && name.endsWith('.tmp')) ||
            (name.startsWith('..link.') && name.endsWith('.tmp')));
      if (!remove) continue;
      this.#retired.delete(name);
      await fs.rm(path.join(this.dir, name), { recursive: true, force: true }).catch((e: Error) => {
        this.#log.warn({ dir: this.dir, entry: name, err: e.message }, 'could not remove an old generation');
      });
    }
    this.#armCleanup();
  }

  /** Remove retired generations when their grace ends, even if no further write comes. */
  #armCleanup(): void {
    if (this.#cleanupTimer || this.#retired.size === 0) return;
    const due = Math.min(...this.#retired.values()) + this.#graceMs;
    this.#cleanupTimer = setTimeout(
      () => {
        this.#cleanupTimer = undefined;
        // Retired generations are never live again, so no live name is needed here.
        void this.#sweep(undefined, false);
      },
      Math.max(0, due - Date.now()),
    );
    // Never keeps the process alive: a leftover is removed by the next process's first write.
    this.#cleanupTimer.unref();
  }
}

/** A generation directory's name, as `..data` must hold it: no path, no `..` walk. */
function isGeneration(target: string): boolean {
  return GENERATION_RE.test(target) && !target.includes('/');
}

function topLevel(p: string): string {
  const i = p.indexOf('/');
  return i < 0 ? p : p.slice(0, i);
}

function diff(oldFiles: Map<string, Fingerprint>, newFiles: Map<string, Fingerprint>): string[] {
  const changed: string[] = [];
  for (const [p, f] of newFiles) {
    const o = oldFiles.get(p);
    if (!o || o.fp !== f.fp || o.mode !== f.mode) changed.push(p);
  }
  for (const p of oldFiles.keys()) if (!newFiles.has(p)) changed.push(p);
  return changed.sort();
}

async function readlinkOrUndefined(full: string, what: string): Promise<string | undefined> {
  try {
    return await fs.readlink(full);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EINVAL') {
      throw new SkError('SK_ERR_WRITE', `${full} is not a symlink; ${what} must be managed by sidekey`, {
        where: full,
      });
    }
    throw writeError(e, `reading ${what}`);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the renames and creations durable; some filesystems refuse fsync on a directory, which is
  // harmless for tmpfs and not worth failing a write over.
  try {
    const fh = await fs.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

function writeError(e: unknown, doing: string): SkError {
  if (e instanceof SkError) return e;
  const err = e as NodeJS.ErrnoException;
  // errno text only (e.g. "EACCES"): node's messages repeat the path, which we already name.
  const why = err.code ?? (err instanceof Error ? err.message : String(e));
  return new SkError('SK_ERR_WRITE', `${doing}: ${why}`, { cause: e });
}
