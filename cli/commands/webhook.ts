import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

/** `sidekey webhook`: the mutating admission server over HTTPS (see webhook/server.ts). */
export function register(program: Command): void {
  program
    .command('webhook')
    .description('run the mutating admission webhook (HTTPS, AdmissionReview v1 on POST /mutate)')
    .option('--config <file>', 'webhook config file (YAML); default: built-in defaults')
    .option('--port <port>', 'HTTPS port', '8443')
    .option('--host <host>', 'address to listen on', '0.0.0.0')
    .requiredOption('--tls-cert <file>', 'TLS certificate (PEM); reloaded when the file changes')
    .requiredOption('--tls-key <file>', 'TLS private key (PEM); reloaded when the file changes')
    .addHelpText(
      'after',
      '\nEndpoints: POST /mutate, GET /healthz, /readyz, /metrics. Logs are JSON lines on stderr.',
    )
    .action(
      async (opts: { config?: string; port: string; host: string; tlsCert: string; tlsKey: string }) => {
        const port = Number(opts.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          throw new SkError('SK_ERR_CLI_USAGE', `--port: "${opts.port}" is not a port number`, {
            where: '--port',
          });
        }
        const { main } = await import('../../webhook/server.js');
        await main({
          configFile: opts.config,
          port,
          host: opts.host,
          tlsCert: opts.tlsCert,
          tlsKey: opts.tlsKey,
        });
      },
    );
}
