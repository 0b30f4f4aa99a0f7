/**
 * V8 flags the agent sets for itself (`v8.setFlagsFromString`) before loading its code: it is mostly
 * idle and runs in every pod, and without the optimising compilers it keeps less resident memory.
 *
 * Never `--lite-mode` or `--jitless`: Node's fetch (undici) compiles WebAssembly, which V8 refuses in
 * jitless mode by aborting the whole process (SIGTRAP) on the first backend request.
 */
export const AGENT_V8_FLAGS: readonly string[] = Object.freeze(['--no-opt', '--no-sparkplug']);
