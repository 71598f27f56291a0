import { z } from 'zod';

/** An S3 prefix inside the bucket; dot segments would let an import read outside what was meant. */
const bucketPrefix = z
  .string()
  .min(1)
  .max(512)
  .refine(
    (value) => !value.startsWith('/') && !value.includes('\\'),
    'must be a relative prefix without "\\"',
  )
  .refine(
    (value) =>
      value
        .split('/')
        .every(
          (segment, index, all) =>
            (segment !== '' || index === all.length - 1) && segment !== '.' && segment !== '..',
        ),
    'must not contain empty, "." or ".." segments',
  );

export const importDatasetSchema = z
  .object({
    name: z.string().describe('dataset name: 1-64 of a-z, 0-9, "-", "_"'),
    source: z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('fashion-mnist'), limit: z.number().int().min(1).optional() }).strict(),
      z
        .object({ kind: z.literal('image-folder'), prefix: bucketPrefix })
        .strict()
        .describe('<prefix>/<class>/<image> objects, one folder per class'),
      z
        .object({ kind: z.literal('webdataset'), prefix: bucketPrefix })
        .strict()
        .describe('WebDataset .tar objects under the prefix: <key>.png|jpg|jpeg|webp with <key>.cls'),
    ]),
  })
  .strict();

export type ImportDatasetRequest = z.infer<typeof importDatasetSchema>;
