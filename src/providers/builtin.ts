import type { z } from 'zod';
import { awsBackend } from './aws/descriptor.js';
import { azureBackend } from './azure/descriptor.js';
import type { AnnotationRow, BackendDescriptor } from './backend.js';
import { fileBackend } from './file/descriptor.js';
import { gcpBackend } from './gcp/descriptor.js';
import { k8sBackend } from './k8s/descriptor.js';
import { vaultBackend } from './vault/descriptor.js';

/**
 * THE list of built-in backends. Adding a backend = its folder `src/providers/<name>/` (descriptor.ts +
 * index.ts) and one line here; everything else (spec schema, webhook config, annotations, pod wiring,
 * lazy loading, docs table, chart values) is derived from this list. See docs/providers.md.
 *
 * The order is the order of `backends.*` in the spec, in generated docs and chart values, and in which
 * the webhook adds each backend's projected tokens to a pod.
 */
export const BACKENDS = [
  fileBackend,
  vaultBackend,
  k8sBackend,
  awsBackend,
  gcpBackend,
  azureBackend,
] as const satisfies readonly BackendDescriptor[];

type Builtin = (typeof BACKENDS)[number];

/** `backends.<name>` settings of every built-in backend, by name (the spec's `backends`). */
export type Backends = {
  readonly [D in Builtin as D['name']]?: Readonly<z.output<D['settings']>>;
};

/** `backends.<name>` as written (before zod's output types), by name. */
export type BackendsInput = {
  [D in Builtin as D['name']]?: z.input<D['settings']>;
};

const BY_NAME: ReadonlyMap<string, BackendDescriptor> = new Map(BACKENDS.map((d) => [d.name, d]));

/** The descriptor of a built-in backend, or undefined. */
export function backendNamed(name: string): BackendDescriptor | undefined {
  return BY_NAME.get(name);
}

/** Every backend annotation row with its backend, in list order. */
export function backendAnnotations(): ReadonlyArray<AnnotationRow & { readonly backend: string }> {
  return BACKENDS.flatMap((d) => d.annotations.map((r) => ({ ...r, backend: d.name })));
}
