/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Secret Manager returns with every
 * payload (`payload.dataCrc32c`). Node's zlib only has the IEEE CRC-32, and a dependency for 15 lines
 * would cost the agent more than it saves; test/unit/providers/gcp-crc32c.test.ts checks the published
 * test vectors (RFC 3720, appendix B.4).
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** The CRC32C of `data`, as an unsigned 32-bit integer. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
