import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AccountObject, Drift, ErrorBody, KeyObject, RefreshResponse, TavilyError } from '../schemas/keys.js';
import { TokenObject } from '../schemas/tokens.js';
import { packageVersion } from '../paths.js';

/**
 * The OpenAPI document, generated from the routes' schemas, at `GET /api/v1/openapi.json`; and
 * the shared schemas the routes refer to by `$ref`.
 */
export const openapi = fp(
  async (app: FastifyInstance) => {
    for (const schema of [ErrorBody, Drift, KeyObject, AccountObject, RefreshResponse, TokenObject, TavilyError]) app.addSchema(schema);
    await app.register(swagger, {
      openapi: {
        info: { title: 'tavily-pool', version: packageVersion(), description: 'A pool of Tavily API keys behind one endpoint.' },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      },
    });
    app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'openapi' },
);
