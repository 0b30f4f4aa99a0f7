/**
 * V8 flags the agent sets for itself (`v8.setFlagsFromString`) before loading its code: it is mostly
 * idle and runs in every pod, and without the optimising compilers it keeps less resident memory and
 * spends less CPU starting (their compile jobs run on background threads; measured with perf stat).
 * `--no-maglev`: Node 22+ run V8's mid-tier compiler Maglev, which `--no-opt` does not turn off;
 * without it the agent on Node 26 keeps ~20 MiB less at a 2-second refresh (docs/agent.md).
 *
 * Never `--lite-mode` or `--jitless`: Node's fetch (undici) compiles WebAssembly, which V8 refuses in
 * jitless mode by aborting the whole process (SIGTRAP) on the first backend request.
 *
 * The young generation's size (`--max-semi-space-size`) cannot be changed once the process runs; the
 * container image starts Node with it on the entry point's `#!` line (scripts/image-rootfs.sh).
 */
export const AGENT_V8_FLAGS: readonly string[] = Object.freeze(['--no-opt', '--no-sparkplug', '--no-maglev']);

/**
 * The one Node option the container image starts every `sidekey` process with (the entry point's `#!`
 * line can carry exactly one; scripts/image-rootfs.sh reads it from here): a young generation of at
 * most 1 MiB per semi-space instead of V8's default, which grows to 16 MiB and more under a frequent
 * refresh. The agent keeps ~20–30 MiB less resident memory at a 2-second refresh, at no measured cost
 * in start-up CPU. `npm run bench` starts the agent with it too.
 */
export const IMAGE_NODE_OPTION = '--max-semi-space-size=1';
