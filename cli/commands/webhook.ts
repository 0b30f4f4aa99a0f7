import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';
import type { SelfManagedTlsCliOptions } from '../../webhook/tls-manager-run.js';

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
    // Self-managed TLS (docs/tls.md): the webhook issues its own CA and certificate.
    .option('--tls-self-managed', 'issue and renew the CA + certificate, write them to --tls-cert/--tls-key')
    .option(
      '--tls-secret <name>',
      'self-managed: Secret storing the CA and certificate (default <service>-tls)',
    )
    .option(
      '--tls-lease <name>',
      'self-managed: Lease electing the one writer (default <service>-tls-writer)',
    )
    .option(
      '--webhook-config <name>',
      'self-managed: MutatingWebhookConfiguration whose caBundle to keep current',
    )
    .option('--service <name>', 'self-managed: Service name the certificate is issued for')
    .option('--namespace <ns>', 'self-managed: namespace of Secret, Lease, Service (default $POD_NAMESPACE)')
    .option('--tls-hosts <list>', 'self-managed: extra DNS names / IPs for the certificate, comma-separated')
    .option('--tls-ca-validity <duration>', 'self-managed: CA validity (default 26280h)')
    .option('--tls-cert-validity <duration>', 'self-managed: certificate validity (default 2160h)')
    .option(
      '--tls-renew-at <fraction>',
      'self-managed: renew at this fraction of the validity (default 0.6667)',
    )
    .option('--tls-sync-interval <duration>', 'self-managed: how often to re-read the Secret (default 30s)')
    .option('--tls-lease-duration <duration>', 'self-managed: writer lease duration (default 15s)')
    .addHelpText(
      'after',
      '\nEndpoints: POST /mutate, GET /healthz, /readyz, /metrics. Logs are JSON lines on stderr.',
    )
    .action(
      async (
        opts: {
          config?: string;
          port: string;
          host: string;
          tlsCert: string;
          tlsKey: string;
        } & SelfManagedTlsCliOptions,
      ) => {
        const port = Number(opts.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          throw new SkError('SK_ERR_CLI_USAGE', `--port: "${opts.port}" is not a port number`, {
            where: '--port',
          });
        }
        let tls: { stop(): Promise<void> } | undefined;
        if (opts.tlsSelfManaged) {
          // The certificate files must exist before the server loads them.
          const { startSelfManagedTls } = await import('../../webhook/tls-manager-run.js');
          tls = await startSelfManagedTls(opts);
        }
        try {
          const { main } = await import('../../webhook/server.js');
          await main({
            configFile: opts.config,
            port,
            host: opts.host,
            tlsCert: opts.tlsCert,
            tlsKey: opts.tlsKey,
          });
        } finally {
          // After the server (shutdown or a failed start): no sync round may still be writing then.
          await tls?.stop();
        }
      },
    );
}
