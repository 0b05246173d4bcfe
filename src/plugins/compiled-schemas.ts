import { type SerializerFactory, SerializerSelector } from '@fastify/fast-json-stringify-compiler';

type Serializer = (data: unknown) => string;

/** A number per schema object, so that a set of shared schemas can be named by its members. */
const ids = new WeakMap<object, number>();
let nextId = 0;
const idOf = (o: unknown) => {
  if (typeof o !== 'object' || o === null) return 0;
  let id = ids.get(o);
  if (id === undefined) ids.set(o, (id = ++nextId));
  return id;
};

/** Compiled response serializers by route schema (its JSON), content type and the shared schemas they saw. */
const serializers = new Map<string, Serializer>();
const base = SerializerSelector();

/**
 * Fastify's response serializers (fast-json-stringify), compiled once per schema in a process
 * rather than once per app: every app a process builds has the same routes, and so the same
 * schemas (a schema is JSON: the same text compiles to the same serializer). Compiling them took ~150 ms of each app's ~300 ms start, which the test
 * suites (hundreds of apps) paid again and again; a server builds one app and is unchanged.
 */
export const cachedSerializers: SerializerFactory = (externalSchemas, options) => {
  const compile = base(externalSchemas, options);
  const external = typeof externalSchemas === 'object' && externalSchemas !== null ? Object.values(externalSchemas) : [];
  const shared = `${external.map(idOf).join(',')}|${JSON.stringify(options ?? null)}`;
  return (route) => {
    const schema = route.schema;
    if (typeof schema !== 'object' || schema === null) return compile(route);
    // By content, not by object: Fastify hands each app its own copy of a route's schema.
    const key = `${(route as { contentType?: string }).contentType ?? ''}|${shared}|${JSON.stringify(schema)}`;
    let fn = serializers.get(key);
    if (!fn) serializers.set(key, (fn = compile(route)));
    return fn;
  };
};
