/** CRC-32 (IEEE 802.3, the zlib polynomial) over metadata: headers, journal records, serialized tables. */
import { crc32 as zlibCrc32 } from 'node:zlib';

export function crc32(data: Uint8Array, initial = 0): number {
  return zlibCrc32(data, initial) >>> 0;
}
