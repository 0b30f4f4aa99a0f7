import {
  CreateSecretCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { startMoto } from '../servers/moto.ts';
import { faultDrills } from './drill.ts';

// Fault drills against a real moto_server (AWS Secrets Manager) behind the fault-injecting proxy.
faultDrills('aws (moto)', async () => {
  const moto = await startMoto();
  const admin = new SecretsManagerClient({
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const name = 'drill/app';
  return {
    target: {
      backend: 'aws',
      ref: `aws:${name}#value`,
      upstream: { host: '127.0.0.1', port: Number(new URL(moto.endpoint).port) },
      env: {
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_REGION: 'us-east-1',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
      backendsYaml: (url) => `  aws: { region: us-east-1, endpoint: "${url}" }`,
      setValue: async (value) => {
        const SecretString = JSON.stringify({ value });
        try {
          await admin.send(new CreateSecretCommand({ Name: name, SecretString }));
        } catch (e) {
          if (!(e instanceof ResourceExistsException)) throw e;
          await admin.send(new PutSecretValueCommand({ SecretId: name, SecretString }));
        }
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
    stop: async () => {
      admin.destroy();
      await moto.stop();
    },
  };
});
