import type { ErrorCode } from '../../errors.js';

/**
 * A failure inside the `azure:` provider before it is tied to a ref: the provider turns it into an
 * SkError whose message starts with the ref and the backend call. `why` is built here, never copied
 * from a response, so it carries no token, request id or value.
 */
export class AzureFailure extends Error {
  readonly code: ErrorCode;
  readonly why: string;
  /** The call that failed when it is not the secret read itself (the Entra token exchange). */
  readonly call: string | undefined;
  constructor(code: ErrorCode, why: string, call?: string) {
    super(why);
    this.name = 'AzureFailure';
    this.code = code;
    this.why = why;
    this.call = call;
  }
}
