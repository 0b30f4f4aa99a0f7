/**
 * The build's identity. scripts/build.mjs defines both at bundle time: the version from package.json,
 * the commit from SIDEKEY_COMMIT or `git rev-parse` (unknown when built outside a git checkout without
 * it). Unbundled (tests importing the sources) they read as the dev fallbacks.
 */
declare const __SIDEKEY_VERSION__: string | undefined;
declare const __SIDEKEY_COMMIT__: string | undefined;

export const VERSION: string = typeof __SIDEKEY_VERSION__ === 'string' ? __SIDEKEY_VERSION__ : '0.0.0-dev';
export const COMMIT: string = typeof __SIDEKEY_COMMIT__ === 'string' ? __SIDEKEY_COMMIT__ : 'unknown';

export interface VersionInfo {
  version: string;
  commit: string;
  node: string;
  platform: string;
}

export function versionInfo(): VersionInfo {
  return {
    version: VERSION,
    commit: COMMIT,
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
  };
}
