import { describe, expect, it } from 'vitest';
import { imageCopyNodeId, parseImageCopyNodeId, retryDelaySeconds, startsCopyJob } from '#functions/images/image-copies.ts';

describe('image copies', () => {
  const copy = { kind: 'image-copy' as const, imageId: 'img-3f9a0c1b2d4e', region: 'eu-west-1' };

  it('start a job only in their own region, when they become copying', () => {
    expect(startsCopyJob(undefined, { ...copy, state: 'copying' }, 'eu-west-1')).toBe(true);
    expect(startsCopyJob({ ...copy, state: 'failed' }, { ...copy, state: 'copying' }, 'eu-west-1')).toBe(true);
    // Another region's stream carries the same change; only eu-west-1 acts on it.
    expect(startsCopyJob(undefined, { ...copy, state: 'copying' }, 'us-east-1')).toBe(false);
    // A VM joining the waiting list, an attempt counted: still copying, no new job.
    expect(startsCopyJob({ ...copy, state: 'copying' }, { ...copy, state: 'copying' }, 'eu-west-1')).toBe(false);
    expect(startsCopyJob({ ...copy, state: 'copying' }, { ...copy, state: 'available' }, 'eu-west-1')).toBe(false);
    expect(startsCopyJob({ ...copy, state: 'copying' }, undefined, 'eu-west-1')).toBe(false);
    expect(startsCopyJob(undefined, { kind: 'vm', region: 'eu-west-1', state: 'copying' } as never, 'eu-west-1')).toBe(false);
  });

  it('are graph nodes whose id names the image and the region', () => {
    const nodeId = imageCopyNodeId(copy.imageId, copy.region);
    expect(nodeId).toBe('img-3f9a0c1b2d4e-eu-west-1');
    expect(parseImageCopyNodeId(nodeId)).toEqual({ imageId: copy.imageId, region: copy.region });
    expect(parseImageCopyNodeId('vm-3f9a0c1b2d4e')).toBeUndefined();
  });

  it('wait longer before each retry, never more than 15 minutes', () => {
    expect([1, 2, 3].map(retryDelaySeconds)).toEqual([2, 4, 8]);
    expect(retryDelaySeconds(20)).toBe(900);
  });
});
