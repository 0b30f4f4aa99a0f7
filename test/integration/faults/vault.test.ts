import { startOpenBao } from '../servers/openbao.ts';
import { faultDrills } from './drill.ts';

// Fault drills against a real OpenBao behind the fault-injecting proxy (see drill.ts).
faultDrills('vault (OpenBao)', async () => {
  const bao = await startOpenBao();
  const port = Number(new URL(bao.addr).port);
  return {
    target: {
      backend: 'vault',
      ref: 'vault:secret/data/drill#value',
      upstream: { host: '127.0.0.1', port },
      files: { 'vault-token': bao.rootToken },
      backendsYaml: (url) =>
        `  vault: { addr: "${url}", authMethod: token, tokenFile: ./vault-token, timeout: 1s }`,
      setValue: async (value) => {
        await bao.api('POST', 'secret/data/drill', { data: { value } });
      },
      expected: {
        hang: ['SK_ERR_BACKEND_TIMEOUT', 'SK_ERR_BACKEND_UNAVAILABLE'],
        slow: ['SK_ERR_BACKEND_TIMEOUT', 'SK_ERR_BACKEND_UNAVAILABLE'],
        refused: ['SK_ERR_BACKEND_UNAVAILABLE'],
        reset: ['SK_ERR_BACKEND_UNAVAILABLE'],
        '500': ['SK_ERR_BACKEND_UNAVAILABLE'],
        '429': ['SK_ERR_BACKEND_UNAVAILABLE'],
        garbage: ['SK_ERR_BACKEND_RESPONSE'],
        truncated: ['SK_ERR_BACKEND_RESPONSE', 'SK_ERR_BACKEND_UNAVAILABLE'],
      },
      maxRequestsPerSecond: 6,
    },
    stop: () => bao.stop(),
  };
});
