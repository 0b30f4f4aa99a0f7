import pino, { type Logger } from 'pino';

/**
 * Structured JSON logging (pino). Secret values must never be passed to a logger; as a second line of
 * defence, fields that commonly carry them are censored wherever they appear. The level is written
 * as a string (`"level":"warn"`) in every process sidekey runs: agent, webhook and CLI.
 */
export const REDACT_PATHS = [
  'value',
  'data',
  'secret',
  'password',
  'token',
  'authorization',
  '*.value',
  '*.data',
  '*.secret',
  '*.password',
  '*.token',
  '*.authorization',
  'headers.authorization',
  'headers["x-vault-token"]',
  'req.headers.authorization',
  'req.headers["x-vault-token"]',
];

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Write to this stream instead of stderr (tests). */
  destination?: NodeJS.WritableStream;
  name?: string;
}

export function createLogger(opts: LogOptions = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'sidekey',
      level: opts.level ?? process.env.SIDEKEY_LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: undefined,
      // `"level":"info"`, not pino's number: what log pipelines (Loki, Elastic, Cloud Logging) expect.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    (opts.destination ?? pino.destination({ fd: 2, sync: true })) as pino.DestinationStream,
  );
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = pino({ level: 'silent' });
