import { describe, expect, it } from 'vitest';
import { MAX_IMAGE_BYTES } from '#events/images.ts';
import { partSizeFor } from '#functions/images/images.ts';

describe('image part sizes', () => {
  it('uses 8 MiB parts until S3 would need more than 10,000 of them, then whole MiB above that', () => {
    const MiB = 1024 * 1024;
    expect(partSizeFor(1)).toBe(8 * MiB);
    expect(partSizeFor(20 * MiB)).toBe(8 * MiB);
    expect(partSizeFor(80_000 * MiB)).toBe(8 * MiB);
    for (const size of [80_001 * MiB, 500 * 1024 * MiB, MAX_IMAGE_BYTES]) {
      const part = partSizeFor(size);
      expect(part % MiB).toBe(0);
      expect(Math.ceil(size / part)).toBeLessThanOrEqual(10_000);
    }
  });
});
