import { ERRORS, type SkError } from '../src/errors.js';
import { isRecord } from '../src/is-record.js';
import type { Pod } from './k8s.js';
import { mutatePod, type Outcome, type PipelineContext } from './pipeline.js';
import { SKIP_TEXT, WARNED_SKIPS } from './should-inject.js';

/**
 * AdmissionReview (admission.k8s.io/v1) in and out. This layer only decodes the request, runs the
 * pipeline, and encodes the answer: the uid is echoed, a patch goes out as base64 JSONPatch.
 */

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  status?: { code: number; message: string; reason?: string };
  warnings?: string[];
}

export interface AdmissionReviewOut {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** What the handler did, for metrics and logs (never carries the object or the patch). */
export type ReviewResult =
  | { readonly kind: 'bad-request'; readonly message: string }
  | {
      readonly kind: 'reviewed';
      readonly review: AdmissionReviewOut;
      readonly outcome: Outcome;
      /** `invalid` outcome admitted per `onInvalidAnnotations: allow-without-injection`. */
      readonly allowedInvalid: boolean;
      readonly uid: string;
      readonly namespace: string | undefined;
      readonly name: string | undefined;
      readonly dryRun: boolean;
    };

export type InvalidPolicy = 'deny' | 'allow-without-injection';

/**
 * Answer one AdmissionReview. Never throws: a malformed review is `bad-request` (HTTP 400), everything
 * else is a well-formed AdmissionReview response.
 */
export function reviewAdmission(body: unknown, ctx: PipelineContext, onInvalid: InvalidPolicy): ReviewResult {
  if (!isRecord(body) || body.kind !== 'AdmissionReview' || body.apiVersion !== ADMISSION_API_VERSION) {
    return { kind: 'bad-request', message: `expected an AdmissionReview of ${ADMISSION_API_VERSION}` };
  }
  const req = body.request;
  if (!isRecord(req) || typeof req.uid !== 'string' || req.uid === '') {
    return { kind: 'bad-request', message: 'the AdmissionReview has no request.uid' };
  }
  const uid = req.uid;
  const namespace = typeof req.namespace === 'string' && req.namespace !== '' ? req.namespace : undefined;
  const dryRun = req.dryRun === true;
  const kind = isRecord(req.kind) ? req.kind : {};
  const isPod = (kind.group ?? '') === '' && kind.kind === 'Pod' && (req.subResource ?? '') === '';
  const obj = req.object;
  const name =
    isRecord(obj) && isRecord(obj.metadata)
      ? ((obj.metadata.name as string | undefined) ?? (obj.metadata.generateName as string | undefined))
      : undefined;

  const outcome: Outcome = isPod
    ? mutatePod({ operation: String(req.operation ?? ''), namespace, pod: obj as Pod }, ctx)
    : { kind: 'skip', reason: 'not-a-pod' };

  const response: AdmissionResponse = { uid, allowed: true };
  let allowedInvalid = false;
  if (outcome.kind === 'inject') {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(outcome.patchJson).toString('base64');
    if (outcome.warnings.length > 0) response.warnings = outcome.warnings.map((w) => `sidekey: ${w}`);
  } else if (outcome.kind === 'invalid') {
    const text = denialMessage(outcome.error);
    if (onInvalid === 'allow-without-injection' && outcome.error.kind === 'input') {
      allowedInvalid = true;
      response.warnings = [`sidekey: not injected: ${outcome.error.code}: ${outcome.error.message}`];
    } else {
      response.allowed = false;
      response.status = { code: ERRORS[outcome.error.code].status, message: text, reason: 'Invalid' };
    }
  } else if (outcome.kind === 'skip' && WARNED_SKIPS.has(outcome.reason)) {
    // The pod asked for its secrets as files and will run without them: tell whoever created it
    // (kubectl prints admission warnings), not only the webhook's log.
    response.warnings = [`sidekey: not injected: ${SKIP_TEXT[outcome.reason]}`];
  }
  return {
    kind: 'reviewed',
    review: { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response },
    outcome,
    allowedInvalid,
    uid,
    namespace,
    name,
    dryRun,
  };
}

/** `sidekey: SK_ERR_X: <annotation>: <cause>` — what kubectl shows the user. */
export function denialMessage(e: SkError): string {
  return `sidekey: ${e.code}: ${e.message}`;
}
