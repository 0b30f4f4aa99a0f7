import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { freePort, type Proc, startProc, TOOLS_DIR, toolPath, waitUntil } from './common.ts';

/** Access keys of an IAM user created in moto. */
export interface MotoUser {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface Moto {
  /** http://127.0.0.1:<port>: pass as the AWS endpoint. */
  readonly endpoint: string;
  /** Requests moto saw, by X-Amz-Target (e.g. `secretsmanager.BatchGetSecretValue`), from its own log. */
  requestLog(): string;
  /** Forget every resource (moto's reset API), between tests. */
  reset(): Promise<void>;
  stop(): Promise<void>;
  proc: Proc;
}

/**
 * Start a real moto_server (the local AWS API server from PyPI) on a random loopback port.
 *
 * With `iamUsers`, moto enforces IAM: the users are created (through boto3 from moto's own venv)
 * with the given inline policies before enforcement starts, and every later request must be signed
 * with one of their keys; a request outside a user's policy gets a real AccessDenied.
 */
export async function startMoto(
  opts: { iamUsers?: Record<string, unknown> } = {},
): Promise<Moto & { users: Record<string, MotoUser> }> {
  const bin = toolPath('moto_server', 'scripts/tools/integration.d/30-moto.sh');
  const port = await freePort();
  const users = opts.iamUsers ?? {};
  const setupCalls = Object.keys(users).length * 3; // CreateUser, PutUserPolicy, CreateAccessKey
  const proc = startProc(bin, ['-H', '127.0.0.1', '-p', String(port)], {
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      ...(opts.iamUsers ? { INITIAL_NO_AUTH_ACTION_COUNT: String(setupCalls) } : {}),
    },
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitUntil('moto_server', async () => (await fetch(`${endpoint}/moto-api/`)).ok, proc, 60_000);
  let keys: Record<string, MotoUser> = {};
  if (opts.iamUsers) {
    const py = path.join(TOOLS_DIR, 'venv-moto', 'bin', 'python');
    const script = `
import boto3, json, sys
users = json.loads(sys.argv[2])
iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='setup', aws_secret_access_key='setup')
out = {}
for name, policy in users.items():
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName='sidekey-test', PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=name)['AccessKey']
    out[name] = {'accessKeyId': k['AccessKeyId'], 'secretAccessKey': k['SecretAccessKey']}
print(json.dumps(out))
`;
    keys = JSON.parse(execFileSync(py, ['-c', script, endpoint, JSON.stringify(users)]).toString());
  }
  return {
    users: keys,
    endpoint,
    proc,
    requestLog: () => proc.output(),
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset: ${res.status}`);
    },
    stop: () => proc.stop(),
  };
}
