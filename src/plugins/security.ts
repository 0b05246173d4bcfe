import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';

/**
 * Security headers for the dashboard and the admin API (registered in their scope; the
 * gateway routes, which answer Tavily SDKs with JSON, are left lean):
 * - a Content-Security-Policy that allows the dashboard's own files only (no inline scripts,
 *   no inline style sheets, no framing, no plugins), with `data:` images for the favicon;
 * - X-Frame-Options DENY, X-Content-Type-Options nosniff, Referrer-Policy no-referrer,
 *   Cross-Origin-Opener-Policy and -Resource-Policy same-origin;
 * - Cache-Control: no-store on every /api answer: admin data never sits in a cache.
 * HSTS is left to the TLS terminator in front (this server speaks plain HTTP).
 */
export async function securityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'data:'],
        'font-src': ["'self'"],
        'connect-src': ["'self'"],
        'object-src': ["'none'"],
        'base-uri': ["'none'"],
        'form-action': ["'self'"],
        'frame-ancestors': ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: false,
    crossOriginEmbedderPolicy: false,
  });
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/api/')) reply.header('cache-control', 'no-store');
    return payload;
  });
}
