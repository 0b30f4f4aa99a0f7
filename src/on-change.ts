import { SkError } from './errors.js';

/** What to do after the file set changed (`sidekey.io/on-change`, spec `onChange`). */
export type OnChange =
  | { readonly type: 'none' }
  /** Send `signal` to the app's main process, or to the process whose name is `process`. */
  | { readonly type: 'signal'; readonly signal: NodeJS.Signals; readonly process: string | undefined }
  /** POST to a URL (normally on 127.0.0.1 in the pod). */
  | { readonly type: 'http'; readonly url: string }
  /** Run a command (split on whitespace, no shell). */
  | { readonly type: 'exec'; readonly command: readonly string[] };

const SIGNALS = new Set(['HUP', 'USR1', 'USR2', 'TERM', 'INT', 'QUIT', 'WINCH']);

/** Parse `signal:HUP[@name]`, `http:<url>`, `exec:<command>` or `none`. */
export function parseOnChange(s: string, where: string): OnChange {
  const v = s.trim();
  if (v === '' || v === 'none') return { type: 'none' };
  const colon = v.indexOf(':');
  const kind = colon < 0 ? v : v.slice(0, colon);
  const arg = colon < 0 ? '' : v.slice(colon + 1);
  // A URL's user:password@ and query may carry a token: errors (admission denials, events) show neither.
  const shown = kind === 'http' ? s.replace(/\/\/[^/?#\s]*@/, '//…@').replace(/\?.*$/, '?…') : s;
  const fail = (why: string): never => {
    throw new SkError('SK_ERR_ON_CHANGE_INVALID', `${where}: "${shown}" ${why}`, { where });
  };
  switch (kind) {
    case 'signal': {
      const [sigRaw = '', proc] = arg.split('@');
      const sig = sigRaw.toUpperCase().replace(/^SIG/, '');
      if (!SIGNALS.has(sig))
        return fail(`names an unsupported signal (use one of ${[...SIGNALS].join(', ')})`);
      if (proc !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(proc))
        return fail('has a bad process name after @');
      return { type: 'signal', signal: `SIG${sig}` as NodeJS.Signals, process: proc };
    }
    case 'http': {
      let url: URL;
      try {
        url = new URL(arg);
      } catch {
        return fail('is not http:<absolute URL>');
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail('must use an http or https URL');
      return { type: 'http', url: url.toString() };
    }
    case 'exec': {
      const command = arg.trim().split(/\s+/).filter(Boolean);
      if (command.length === 0) return fail('has an empty command');
      return { type: 'exec', command };
    }
    default:
      return fail('is not signal:<SIG>[@process], http:<url>, exec:<command> or none');
  }
}

/** Format back to the annotation form (round-trips with {@link parseOnChange}). */
export function formatOnChange(o: OnChange): string {
  switch (o.type) {
    case 'none':
      return 'none';
    case 'signal':
      return `signal:${o.signal.replace(/^SIG/, '')}${o.process ? `@${o.process}` : ''}`;
    case 'http':
      return `http:${o.url}`;
    case 'exec':
      return `exec:${o.command.join(' ')}`;
  }
}
