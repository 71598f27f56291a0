import { z } from 'zod';
import { attentionIndexSchema } from '@dinoq/jobs';
import { checkpointStepSchema } from '../checkpoint-step';
import { MAX_UPLOAD_IMAGES } from './image-upload';

export const createAttentionSchema = z
  .object({
    step: checkpointStepSchema,
    images: z.union([
      z
        .object({
          split: z.string().min(1).max(32),
          indices: z.array(z.number().int().min(0)).min(1).max(64),
        })
        .strict(),
      z
        .object({
          upload: z
            .array(z.string())
            .min(1)
            .max(MAX_UPLOAD_IMAGES)
            .describe('base64 PNG or JPEG images (or data: URLs), each at most 1 MiB'),
        })
        .strict(),
    ]),
    threshold: z.number().gt(0).lt(1).optional().describe('attention mass kept by the masks (default 0.6)'),
  })
  .strict();

export type CreateAttentionRequest = z.infer<typeof createAttentionSchema>;

/** GET .../attention/<exportId>: the export's state, with its index.json once every PNG is written. */
export const attentionViewSchema = z.object({
  runId: z.string(),
  exportId: z.string(),
  status: z.string().describe('completed, or the job state (waiting, active, failed, ...)'),
  error: z.string().nullable(),
  index: attentionIndexSchema.nullable(),
});

export type AttentionView = z.infer<typeof attentionViewSchema>;
