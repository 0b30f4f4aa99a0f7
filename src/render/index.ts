import type { SecretValue } from '../providers/types.js';
import type { ResolvedSecret } from '../spec.js';
import { renderFormat } from './formats.js';
import { renderTemplate } from './template.js';

export { dotenvQuote, renderFormat } from './formats.js';
export { compileTemplate, templateContext } from './template.js';

/**
 * Render one secret's file content (called after `selectKey`). A template, when given, decides the
 * whole file and the format is ignored; otherwise the format does. Throws SkError (SK_ERR_RENDER,
 * SK_ERR_TEMPLATE_RENDER) naming the secret and, for templates, the line; never the value.
 */
export function renderSecret(secret: ResolvedSecret, value: SecretValue): Buffer {
  if (secret.template !== undefined) return renderTemplate({ ...secret, template: secret.template }, value);
  return renderFormat(secret, value);
}
