import { applyDecorators, type INestApplication } from '@nestjs/common';
import {
  ApiQuery,
  DocumentBuilder,
  SwaggerModule,
  type ApiBodyOptions,
  type OpenAPIObject,
} from '@nestjs/swagger';
import { z } from 'zod';

type BodySchema = Extract<ApiBodyOptions, { schema: unknown }>['schema'];

/** The request schemas double as the OpenAPI body schemas, so the two cannot drift apart. */
export function openApiSchema(schema: z.ZodType): BodySchema {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as BodySchema;
}

/** One documented query parameter per field of a query schema; required unless it may be absent. */
export function openApiQuery(schema: z.ZodObject): MethodDecorator {
  return applyDecorators(
    ...Object.entries(schema.shape).map(([name, field]) =>
      ApiQuery({ name, required: !field.safeParse(undefined).success, schema: openApiSchema(field) }),
    ),
  );
}

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('dinoq API')
    .setDescription(
      'Queue DINO self-supervised ViT training, evaluation and attention exports; inspect runs and their ' +
        'artifacts. Every route except /health and /health/live needs "Authorization: Bearer <api key>"; ' +
        '/health adds its detail (checks, workers) only for a valid key.',
    )
    .setVersion('0.1.0')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'one of DINOQ_API_KEYS' })
    .build();
  return SwaggerModule.createDocument(app, config);
}

/** Swagger UI at /docs, the JSON document at /docs-json. */
export function setupOpenApi(app: INestApplication): void {
  SwaggerModule.setup('docs', app, () => buildOpenApiDocument(app), { jsonDocumentUrl: 'docs-json' });
}
