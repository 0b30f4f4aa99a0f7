import type { Logger } from '../src/log.js';
import { kubeVersionUnknown, nativeSidecarsEnabled, type WebhookConfig } from './config.js';

/** How often the server re-reads the API server's /version (an upgraded control plane is noticed). */
export const VERSION_RECHECK_MS = 10 * 60 * 1000;

/**
 * What `mode: auto` means on this cluster, kept current: from `kubernetesVersion` when configured,
 * else from the API server's /version, re-read every {@link VERSION_RECHECK_MS}. An unknown version
 * means native sidecars (every supported Kubernetes release has them); that is logged once, when the
 * version becomes unknown, not on every failed re-read. `onChange` runs when the decision changes.
 */
export class NativeSidecarWatch {
  #native: boolean;
  #unknownSaid = false;
  #timer: NodeJS.Timeout | undefined;
  #version: string | undefined;

  constructor(
    private readonly config: WebhookConfig,
    private readonly readVersion: () => Promise<string | undefined>,
    private readonly log: Logger,
    private readonly onChange: (native: boolean) => void,
  ) {
    this.#native = nativeSidecarsEnabled(config);
  }

  get native(): boolean {
    return this.#native;
  }

  get version(): string | undefined {
    return this.config.kubernetesVersion ?? this.#version;
  }

  /** Whether the version must be read from the API server at all. */
  get discovers(): boolean {
    return this.config.nativeSidecars === 'auto' && !this.config.kubernetesVersion;
  }

  /** Read the version once (no-op when configured) and apply the decision. */
  async refresh(): Promise<void> {
    if (this.discovers) this.#version = await this.readVersion();
    const native = nativeSidecarsEnabled(this.config, this.#version);
    if (kubeVersionUnknown(this.config, this.#version)) {
      if (!this.#unknownSaid) {
        this.#unknownSaid = true;
        this.log.warn('Kubernetes version unknown: mode auto injects native sidecars (Kubernetes >= 1.29)');
      }
    } else {
      this.#unknownSaid = false;
    }
    if (native !== this.#native) {
      this.#native = native;
      this.log.info(
        { nativeSidecars: native, kubernetesVersion: this.version },
        'injection mode for auto changed',
      );
      this.onChange(native);
    }
  }

  /** Re-read periodically; the timer never keeps the process alive. */
  start(intervalMs = VERSION_RECHECK_MS): void {
    if (!this.discovers || this.#timer) return;
    this.#timer = setInterval(() => {
      this.refresh().catch(() => {});
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
