import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { SkError } from '../../../src/errors.js';
import { documentItems } from '../../../webhook/manifest-docs.js';

const docs = (text: string) => YAML.parseAllDocuments(text) as YAML.Document.Parsed[];

describe('documentItems', () => {
  it('gives a List its items, a single object itself, and an empty document nothing', () => {
    const [list, pod, empty] = docs(
      'kind: List\nitems: [{kind: Pod}, {kind: Deployment}]\n---\nkind: Pod\n---\n',
    );
    expect(documentItems(list!, 'in.yaml')).toEqual([{ kind: 'Pod' }, { kind: 'Deployment' }]);
    expect(documentItems(pod!, 'in.yaml')).toEqual([{ kind: 'Pod' }]);
    expect(empty === undefined || documentItems(empty, 'in.yaml').length === 0).toBe(true);
  });

  it('refuses a document that does not parse, naming the file and line, never its content', () => {
    const secret = 'hunter2-s3cr3t';
    const [bad] = docs(`kind: Pod\nmetadata:\n  annotations: {a: "${secret}"\n`);
    let err: unknown;
    try {
      documentItems(bad!, 'pods/app.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SkError);
    expect((err as SkError).code).toBe('SK_ERR_MANIFEST_INVALID');
    expect((err as SkError).message).toMatch(/^pods\/app\.yaml(:\d+)?: not valid YAML\/JSON \(/);
    expect((err as SkError).message).not.toContain(secret);
  });
});
