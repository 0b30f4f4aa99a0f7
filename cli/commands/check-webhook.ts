import type { Command } from 'commander';

/** `sidekey check-webhook`: a dry-run pod through the API server (webhook/check.ts); the chart's `helm test`. */
export function register(program: Command): void {
  program
    .command('check-webhook')
    .description(
      'check the webhook answers: create an opted-in pod with dryRun=All and expect the agent in it',
    )
    .option(
      '-n, --namespace <ns>',
      'namespace of the dry-run pod (default: the kubeconfig context namespace)',
    )
    .option('--timeout <seconds>', 'how long to wait for the API server, e.g. 10s', '10s')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .addHelpText(
      'after',
      '\nNothing is stored: admission runs (the webhook included), the pod is not created. Needs the\n' +
        'create verb on pods in the namespace. Exit 0 injected, 1 refused or not injected (SK_ERR_WEBHOOK_CHECK).\n\n' +
        'Examples:\n' +
        '  sidekey check-webhook -n shop\n' +
        '  helm test sidekey -n sidekey-system     (runs it in a pod)',
    )
    .action(async (opts: { namespace?: string; timeout?: string; output?: string }) => {
      const { runCheckWebhook } = await import('../../webhook/check.js');
      process.exitCode = await runCheckWebhook(opts);
    });
}
