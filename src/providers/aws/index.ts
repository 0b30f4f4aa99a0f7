import {
  BatchGetSecretValueCommand,
  GetSecretValueCommand,
  type GetSecretValueCommandInput,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from '@aws-sdk/client-secrets-manager';
import pRetry, { AbortError } from 'p-retry';
import { type ErrorCode, SkError } from '../../errors.js';
import type { SecretRef } from '../../refs.js';
import type { Backends } from '../../spec.js';
import { deadlineRetryOptions } from '../deadline-retry.js';
import { Limiter } from '../limit.js';
import type { FetchResult, Provider, ProviderContext, ProviderFactory, ProviderLogger } from '../types.js';
import { type AwsSettings, awsBackend } from './descriptor.js';

/**
 * The `aws:` provider (AWS Secrets Manager, @aws-sdk/client-secrets-manager):
 * `aws:<name or ARN>[?stage=AWSPREVIOUS | ?version=<VersionId>][#key]`.
 *
 * - Credentials: the SDK's default chain (env, web identity / IRSA, EKS Pod Identity, SSO/profile,
 *   container and instance metadata). Region: `backends.aws.region`, else the SDK's (AWS_REGION,
 *   profile). Endpoint: `backends.aws.endpoint`, else AWS_ENDPOINT_URL_SECRETS_MANAGER /
 *   AWS_ENDPOINT_URL (as the SDK itself honours them).
 * - `SecretString` and `SecretBinary` become bytes; `#key` into a JSON SecretString is the caller's
 *   selectKey. The version is the VersionId, so an unchanged secret is never rewritten.
 * - {@link AwsProvider.fetchMany} reads up to 20 secrets per BatchGetSecretValue call; refs with
 *   `?stage=`/`?version=` (which the batch call cannot express) and ids the batch did not answer are
 *   read one by one. When the IAM policy does not allow `secretsmanager:BatchGetSecretValue`, the
 *   provider says so once and reads one by one from then on.
 * - Throttling, 5xx, network errors and timeouts are retried here (not by the SDK, whose retries
 *   neither see the call's deadline nor report how many were made): at most {@link AWS_MAX_ATTEMPTS}
 *   attempts, exponential backoff with jitter, never an attempt that could not finish before the
 *   call's deadline; errors say how many attempts were made.
 * - Every attempt has a timeout that ends it ({@link AWS_REQUEST_TIMEOUT_MS}, cut to the call's
 *   deadline; the SDK only warns unless `throwOnRequestTimeout`) and the call's AbortSignal. The
 *   SDK's warnings go to the JSON log, never to stderr.
 */

/** BatchGetSecretValue takes at most this many ids per call. */
export const AWS_BATCH_MAX = 20;
/** Attempts per call (1 + retries) for throttling, 5xx and network errors. */
export const AWS_MAX_ATTEMPTS = 4;
/** Calls in flight to Secrets Manager at most (refs read one by one are many when they use ?stage=). */
export const AWS_MAX_IN_FLIGHT = 8;
/** Per-request timeout. */
export const AWS_REQUEST_TIMEOUT_MS = 10_000;
/** Backoff between attempts: min·2^(n−1), up to max, times a random 1–2. */
export const AWS_RETRY = Object.freeze({ minTimeoutMs: 100, maxTimeoutMs: 2000 });
/** An attempt is started only if at least this long is left before the call's deadline. */
const AWS_MIN_ATTEMPT_MS = 100;

export const awsProvider: ProviderFactory = {
  name: 'aws',
  validateRef: awsBackend.validateRef,
  create(backends: Backends): Provider {
    return new AwsProvider(backends.aws ?? {});
  },
};

/** Test seams. */
export interface AwsProviderOptions {
  env?: NodeJS.ProcessEnv;
  /** Extra SDK client settings (tests: credentials). */
  clientConfig?: Partial<SecretsManagerClientConfig>;
  /** Backoff between attempts (tests). */
  retry?: { minTimeoutMs: number; maxTimeoutMs: number };
}

/** The AWS Secrets Manager provider; one SDK client per agent. */
export class AwsProvider implements Provider {
  readonly name = 'aws';
  readonly #client: SecretsManagerClient;
  #batchDenied = false;
  /** Calls sent (each attempt counts), by operation: for tests and the bench. */
  readonly stats = { requests: 0, byOperation: {} as Record<string, number> };
  readonly #limiter = new Limiter(AWS_MAX_IN_FLIGHT);
  readonly #retry: { minTimeoutMs: number; maxTimeoutMs: number };
  /** Where the SDK's own log lines go: the log of the call in progress (JSON), never stderr. */
  #sdkLog: ProviderLogger | undefined;

  /** The most calls that were in flight at once (tests, bench). */
  get peakInFlight(): number {
    return this.#limiter.peak;
  }

  constructor(settings: Readonly<AwsSettings>, opts: AwsProviderOptions = {}) {
    const env = opts.env ?? process.env;
    const endpoint = settings.endpoint ?? env.AWS_ENDPOINT_URL_SECRETS_MANAGER ?? env.AWS_ENDPOINT_URL;
    if (endpoint !== undefined) {
      try {
        new URL(endpoint);
      } catch {
        throw new SkError('SK_ERR_BACKEND_CONFIG', `backends.aws.endpoint: "${endpoint}" is not a URL`, {
          where: 'backends.aws.endpoint',
        });
      }
    }
    // The SDK warns (9 lines on stderr) about its future Node support policy when it starts on Node 20;
    // the agent's stderr is its user interface (one line per failure), and the image pins its Node.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.#retry = opts.retry ?? AWS_RETRY;
    // The SDK writes its warnings (e.g. "a request has exceeded the configured requestTimeout") to
    // console unless given a logger: into the JSON log with them, as warnings without any value.
    const sdkLogger = {
      debug: () => {},
      info: () => {},
      trace: () => {},
      warn: (...m: unknown[]) => this.#sdkLog?.warn({ sdk: sdkText(m) }, 'aws sdk warning'),
      error: (...m: unknown[]) => this.#sdkLog?.warn({ sdk: sdkText(m) }, 'aws sdk error'),
    };
    this.#client = new SecretsManagerClient({
      ...(settings.region ? { region: settings.region } : {}),
      ...(endpoint ? { endpoint } : {}),
      // Retries are ours (see #send).
      maxAttempts: 1,
      logger: sdkLogger,
      requestHandler: {
        requestTimeout: AWS_REQUEST_TIMEOUT_MS,
        connectionTimeout: 5000,
        // Without it the SDK only logs a warning at requestTimeout and the request never ends.
        throwOnRequestTimeout: true,
        logger: sdkLogger,
      },
      ...opts.clientConfig,
    });
    // Count every attempt that goes on the wire (inside the retry loop).
    this.#client.middlewareStack.add(
      (next, context) => async (args) => {
        this.stats.requests++;
        const op = (context.commandName ?? 'unknown').replace(/Command$/, '');
        this.stats.byOperation[op] = (this.stats.byOperation[op] ?? 0) + 1;
        return next(args);
      },
      { step: 'deserialize', name: 'sidekeyCountRequests' },
    );
  }

  async fetch(ref: SecretRef, ctx: ProviderContext): Promise<FetchResult> {
    awsProvider.validateRef(ref, ref.raw);
    const input: GetSecretValueCommandInput = { SecretId: ref.locator };
    if (ref.options.stage) input.VersionStage = ref.options.stage;
    if (ref.options.version) input.VersionId = ref.options.version;
    let out: SecretFields;
    try {
      out = await this.#send((o) => this.#client.send(new GetSecretValueCommand(input), o), ctx);
    } catch (e) {
      throw mapAwsError(e, 'GetSecretValue', ref);
    }
    return toResult(ref, out, 'GetSecretValue');
  }

  async fetchMany(refs: readonly SecretRef[], ctx: ProviderContext): Promise<Array<FetchResult | SkError>> {
    const results: Array<FetchResult | SkError | undefined> = new Array(refs.length);
    const single: number[] = [];
    const byId = new Map<string, number[]>();
    refs.forEach((ref, i) => {
      try {
        awsProvider.validateRef(ref, ref.raw);
      } catch (e) {
        results[i] = e as SkError;
        return;
      }
      if (this.#batchDenied || Object.keys(ref.options).length > 0) {
        single.push(i);
        return;
      }
      const list = byId.get(ref.locator);
      if (list) list.push(i);
      else byId.set(ref.locator, [i]);
    });

    const ids = [...byId.keys()];
    if (ids.length === 1) single.push(...byId.get(ids[0]!)!);
    else {
      for (let off = 0; off < ids.length; off += AWS_BATCH_MAX) {
        const chunk = ids.slice(off, off + AWS_BATCH_MAX);
        // Denied on an earlier chunk: the rest are read one by one without asking again.
        const unanswered = this.#batchDenied ? chunk : await this.#batch(chunk, byId, refs, results, ctx);
        for (const id of unanswered) single.push(...byId.get(id)!);
      }
    }

    await Promise.all(
      single.map(async (i) => {
        try {
          results[i] = await this.fetch(refs[i]!, ctx);
        } catch (e) {
          results[i] = e instanceof SkError ? e : mapAwsError(e, 'GetSecretValue', refs[i]!);
        }
      }),
    );
    return results.map(
      (r, i) =>
        r ??
        new SkError('SK_ERR_INTERNAL', `${refs[i]!.raw}: aws fetchMany produced no result`, {
          where: refs[i]!.raw,
        }),
    );
  }

  /** One BatchGetSecretValue for ≤ 20 ids; fills results; returns the ids it did not answer. */
  async #batch(
    chunk: string[],
    byId: Map<string, number[]>,
    refs: readonly SecretRef[],
    results: Array<FetchResult | SkError | undefined>,
    ctx: ProviderContext,
  ): Promise<string[]> {
    const pending = new Set(chunk);
    let token: string | undefined;
    // SecretIdList answers page by page only when the values are large; bounded all the same.
    for (let page = 0; page < chunk.length + 1; page++) {
      let out: Awaited<ReturnType<typeof this.sendBatch>>;
      try {
        out = await this.sendBatch(chunk, token, ctx);
      } catch (e) {
        if (isAccessDenied(e)) {
          // Common: a policy granting GetSecretValue but not BatchGetSecretValue. Read one by one.
          this.#batchDenied = true;
          ctx.log.warn(
            { action: 'secretsmanager:BatchGetSecretValue' },
            'aws BatchGetSecretValue denied; reading secrets one by one (grant the action to batch)',
          );
          return [...pending];
        }
        for (const id of pending) {
          for (const i of byId.get(id)!) results[i] = mapAwsError(e, 'BatchGetSecretValue', refs[i]!);
        }
        return [];
      }
      for (const entry of out.SecretValues ?? []) {
        const id = [...pending].find((x) => matches(x, entry.Name, entry.ARN));
        if (id === undefined) continue;
        pending.delete(id);
        for (const i of byId.get(id)!) {
          try {
            results[i] = toResult(refs[i]!, entry, 'BatchGetSecretValue');
          } catch (err) {
            results[i] = err as SkError;
          }
        }
      }
      for (const err of out.Errors ?? []) {
        const id = err.SecretId !== undefined && pending.has(err.SecretId) ? err.SecretId : undefined;
        if (id === undefined) continue;
        pending.delete(id);
        for (const i of byId.get(id)!) {
          results[i] = mapAwsError({ name: err.ErrorCode ?? 'Unknown' }, 'BatchGetSecretValue', refs[i]!);
        }
      }
      token = out.NextToken;
      if (!token || pending.size === 0) break;
    }
    return [...pending];
  }

  /** @internal */
  sendBatch(chunk: string[], token: string | undefined, ctx: ProviderContext) {
    const input = { SecretIdList: chunk, ...(token ? { NextToken: token } : {}) };
    return this.#send((o) => this.#client.send(new BatchGetSecretValueCommand(input), o), ctx);
  }

  /**
   * Send a command with our retries: throttling, 5xx, network errors and attempt timeouts, at most
   * {@link AWS_MAX_ATTEMPTS} attempts, none that could not finish before the call's deadline. Each
   * attempt has the call's AbortSignal and a timeout cut to the deadline. A failure carries the
   * number of attempts made (`attempts`), for the message.
   */
  async #send<O>(
    attempt: (opts: { abortSignal: AbortSignal; requestTimeout: number }) => Promise<O>,
    ctx: ProviderContext,
  ): Promise<O> {
    this.#sdkLog = ctx.log;
    const deadline = ctx.deadline ?? Number.POSITIVE_INFINITY;
    let attempts = 0;
    try {
      return await pRetry(
        () =>
          this.#limiter.run(async () => {
            if (ctx.signal.aborted) throw new AbortError('aborted');
            attempts++;
            const requestTimeout = Math.max(1, Math.min(AWS_REQUEST_TIMEOUT_MS, deadline - Date.now()));
            try {
              return await attempt({ abortSignal: ctx.signal, requestTimeout });
            } catch (e) {
              if (ctx.signal.aborted || !isRetryable(e)) throw new AbortError(e as Error);
              throw e;
            }
          }),
        {
          retries: AWS_MAX_ATTEMPTS - 1,
          ...deadlineRetryOptions(this.#retry, ctx.signal, deadline, AWS_MIN_ATTEMPT_MS),
        },
      );
    } catch (e) {
      // p-retry wraps what it was told not to retry; the SDK's error is inside.
      const inner = e instanceof AbortError ? ((e as { originalError?: unknown }).originalError ?? e) : e;
      if (ctx.signal.aborted && ctx.signal.reason instanceof SkError) throw ctx.signal.reason;
      if (inner !== null && typeof inner === 'object') (inner as { attempts?: number }).attempts = attempts;
      throw inner;
    }
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }
}

/** The SDK's log arguments as one bounded line (they carry no values: timeouts, socket warnings). */
function sdkText(m: unknown[]): string {
  return m
    .map((x) => (typeof x === 'string' ? x : x instanceof Error ? x.message : ''))
    .join(' ')
    .replace(/\s+/g, ' ')
    .slice(0, 300);
}

const THROTTLING = new Set([
  'ThrottlingException',
  'TooManyRequestsException',
  'Throttling',
  'RequestLimitExceeded',
  'SlowDown',
  'RequestThrottled',
  'RequestThrottledException',
]);

/** Worth another attempt: throttling, 5xx, network errors, an attempt's timeout. */
function isRetryable(e: unknown): boolean {
  const name = errName(e);
  const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return (
    THROTTLING.has(name) ||
    name === 'InternalServiceError' ||
    (status !== undefined && (status >= 500 || status === 429)) ||
    NETWORK_CODES.has(name) ||
    name === 'TimeoutError' ||
    name === 'RequestTimeout' ||
    name === 'ECONNRESET' ||
    /socket hang up/i.test(String((e as Error | null)?.message ?? ''))
  );
}

interface SecretFields {
  VersionId?: string | undefined;
  SecretString?: string | undefined;
  SecretBinary?: Uint8Array | undefined;
}

function toResult(ref: SecretRef, out: SecretFields, op: string): FetchResult {
  const version = out.VersionId;
  if (!version) {
    throw new SkError(
      'SK_ERR_BACKEND_RESPONSE',
      `${ref.raw}: aws ${op} ${ref.locator}: answer without VersionId`,
      {
        where: ref.raw,
      },
    );
  }
  if (typeof out.SecretString === 'string') {
    return { value: { kind: 'bytes', bytes: Buffer.from(out.SecretString, 'utf8') }, version };
  }
  if (out.SecretBinary instanceof Uint8Array) {
    return { value: { kind: 'bytes', bytes: Buffer.from(out.SecretBinary) }, version };
  }
  throw new SkError(
    'SK_ERR_BACKEND_RESPONSE',
    `${ref.raw}: aws ${op} ${ref.locator}: the secret has neither SecretString nor SecretBinary`,
    { where: ref.raw },
  );
}

/** Does a batch answer entry (Name, ARN) answer the id we asked for (name, full or partial ARN)? */
function matches(id: string, name: string | undefined, arn: string | undefined): boolean {
  if (id === name || id === arn) return true;
  // A partial ARN (without the random 6-character suffix) names the secret too.
  return id.startsWith('arn:') && arn?.startsWith(`${id}-`) === true && arn.length === id.length + 7;
}

function errName(e: unknown): string {
  const err = e as { name?: unknown; Code?: unknown; code?: unknown } | null;
  if (typeof err?.name === 'string' && err.name !== 'Error') return err.name;
  if (typeof err?.Code === 'string') return err.Code;
  if (typeof err?.code === 'string') return err.code;
  return 'Error';
}

function isAccessDenied(e: unknown): boolean {
  const name = errName(e);
  const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return (
    name === 'AccessDeniedException' || name === 'AccessDenied' || (status === 403 && !AUTH_ERRORS.has(name))
  );
}

const AUTH_ERRORS = new Set([
  'CredentialsProviderError',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'ExpiredTokenException',
  'ExpiredToken',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

/**
 * Map an SDK error (or a batch entry's ErrorCode) to a typed SkError naming the ref and the AWS call.
 * Messages are built here, not copied from AWS: no request ids, no credentials.
 */
export function mapAwsError(e: unknown, op: string, ref: SecretRef): SkError {
  if (e instanceof SkError) return e;
  const name = errName(e);
  const at = `${ref.raw}: aws ${op} ${ref.locator}`;
  // How many attempts our retries made (#send); a batch entry's error had one.
  const n = (e as { attempts?: unknown } | null)?.attempts;
  const tries = typeof n === 'number' ? `${n} attempt${n === 1 ? '' : 's'}` : '1 attempt';
  const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  let code: ErrorCode;
  let why: string;
  if (name === 'ResourceNotFoundException') {
    code = 'SK_ERR_SOURCE_NOT_FOUND';
    why =
      ref.options.stage || ref.options.version ? 'secret or requested version not found' : 'secret not found';
  } else if (isAccessDenied(e)) {
    code = 'SK_ERR_BACKEND_DENIED';
    why = `access denied: the role needs secretsmanager:${op} on this secret`;
  } else if (name === 'DecryptionFailure') {
    code = 'SK_ERR_BACKEND_DENIED';
    why = "cannot decrypt the secret: the role needs kms:Decrypt on the secret's KMS key";
  } else if (AUTH_ERRORS.has(name)) {
    code = 'SK_ERR_BACKEND_AUTH';
    why =
      name === 'CredentialsProviderError'
        ? 'no AWS credentials (default chain: env, web identity/IRSA, EKS Pod Identity, profile, metadata)'
        : `AWS rejected the credentials (${name})`;
  } else if (name === 'ThrottlingException' || name === 'TooManyRequestsException') {
    code = 'SK_ERR_BACKEND_UNAVAILABLE';
    why = `throttled (${name}) on ${tries} with backoff`;
  } else if (name === 'InternalServiceError' || (status !== undefined && status >= 500)) {
    code = 'SK_ERR_BACKEND_UNAVAILABLE';
    why = `AWS answered ${name}${status ? ` (${status})` : ''} on ${tries}`;
  } else if (name === 'TimeoutError' || name === 'RequestTimeout') {
    code = 'SK_ERR_BACKEND_UNAVAILABLE';
    why = `timed out (no complete answer within the request timeout) on ${tries}`;
  } else if (NETWORK_CODES.has(name)) {
    code = 'SK_ERR_BACKEND_UNAVAILABLE';
    why = name === 'ECONNRESET' ? `connection reset on ${tries}` : `unreachable (${name}) on ${tries}`;
  } else if (name === 'AbortError') {
    code = 'SK_ERR_BACKEND_UNAVAILABLE';
    why = 'aborted';
  } else if (/region is missing/i.test(String((e as Error | null)?.message ?? ''))) {
    code = 'SK_ERR_BACKEND_CONFIG';
    why = 'no region: set backends.aws.region or AWS_REGION';
  } else if (name === 'InvalidRequestException') {
    code = 'SK_ERR_SOURCE_UNREADABLE';
    why = 'the secret cannot be read now (scheduled for deletion, or disabled)';
  } else if (name === 'InvalidParameterException' || name === 'ValidationException') {
    code = 'SK_ERR_BACKEND_RESPONSE';
    why = `AWS refused the request (${name})`;
  } else {
    code = 'SK_ERR_BACKEND_RESPONSE';
    why = `unexpected error ${name}`;
  }
  return new SkError(code, `${at}: ${why}`, { where: ref.raw });
}
