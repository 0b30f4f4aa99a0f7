import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { AwsProvider } from '../../../src/providers/aws/index.ts';
import { VaultProvider } from '../../../src/providers/vault/index.ts';
import {
  describeProviderContract,
  type ProviderHarness,
  recordingContext,
} from '../../unit/providers/contract.ts';
import { startMoto } from '../servers/moto.ts';
import { startOpenBao } from '../servers/openbao.ts';

// The shared provider contract (test/unit/providers/contract.ts), run against real servers.

describeProviderContract(
  'vault KV v2 (real OpenBao)',
  { nestedMaps: true, fetchMany: false, watch: false, unreadable: false },
  async (): Promise<ProviderHarness> => {
    const bao = await startOpenBao();
    const provider = new VaultProvider(
      { addr: bao.addr, authMethod: 'token' },
      { env: { VAULT_TOKEN: bao.rootToken } },
    );
    return {
      provider,
      async putString(name, value) {
        await bao.api('POST', `secret/data/contract/${name}`, { data: { value } });
        return `vault:secret/contract/${name}#value`;
      },
      async putMap(name, data) {
        await bao.api('POST', `secret/data/contract/${name}`, { data });
        return `vault:secret/contract/${name}`;
      },
      async remove(name) {
        await bao.api('DELETE', `secret/metadata/contract/${name}`);
      },
      missingRef: () => 'vault:secret/contract/never-written',
      async close() {
        await provider.close(recordingContext());
        await bao.stop();
      },
    };
  },
);

describeProviderContract(
  'vault KV v1 (real OpenBao)',
  { nestedMaps: true, fetchMany: false, watch: false, unreadable: false },
  async (): Promise<ProviderHarness> => {
    const bao = await startOpenBao();
    await bao.api('POST', 'sys/mounts/kv1', { type: 'kv', options: { version: '1' } });
    const provider = new VaultProvider(
      { addr: bao.addr, authMethod: 'token' },
      { env: { VAULT_TOKEN: bao.rootToken } },
    );
    return {
      provider,
      async putString(name, value) {
        await bao.api('POST', `kv1/contract/${name}`, { value });
        return `vault:kv1/contract/${name}#value`;
      },
      async putMap(name, data) {
        await bao.api('POST', `kv1/contract/${name}`, data);
        return `vault:kv1/contract/${name}`;
      },
      async remove(name) {
        await bao.api('DELETE', `kv1/contract/${name}`);
      },
      missingRef: () => 'vault:kv1/contract/never-written',
      async close() {
        await provider.close(recordingContext());
        await bao.stop();
      },
    };
  },
);

describeProviderContract(
  'aws Secrets Manager (real moto_server)',
  { nestedMaps: true, fetchMany: true, watch: false, unreadable: false },
  async (): Promise<ProviderHarness> => {
    const moto = await startMoto();
    const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
    const admin = new SecretsManagerClient({ endpoint: moto.endpoint, region: 'us-east-1', credentials });
    const provider = new AwsProvider(
      { region: 'us-east-1', endpoint: moto.endpoint },
      { clientConfig: { credentials } },
    );
    const put = async (name: string, value: string) => {
      const id = `contract/${name}`;
      try {
        await admin.send(new PutSecretValueCommand({ SecretId: id, SecretString: value }));
      } catch (e) {
        if (!(e instanceof ResourceNotFoundException)) throw e;
        await admin.send(new CreateSecretCommand({ Name: id, SecretString: value }));
      }
      return `aws:${id}`;
    };
    return {
      provider,
      putString: put,
      putMap: (name, data) => put(name, JSON.stringify(data)),
      async remove(name) {
        await admin.send(
          new DeleteSecretCommand({ SecretId: `contract/${name}`, ForceDeleteWithoutRecovery: true }),
        );
      },
      missingRef: () => 'aws:contract/never-written',
      async close() {
        admin.destroy();
        await provider.close();
        await moto.stop();
      },
    };
  },
);
