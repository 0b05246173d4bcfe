import { isUtf8 } from 'node:buffer';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { invalidUtf8 } from '../http/input.js';

type AddFormats = (ajv: Ajv) => Ajv;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    strict: false,
    useDefaults: true,
    // Unknown fields are an error that names them, not silently dropped.
    removeAdditional: false,
    // Query strings and path parameters arrive as text; JSON bodies must carry the right types.
    coerceTypes: coerce ? 'array' : false,
    // Errors carry their schema, so that a pattern's description can name what is expected.
    verbose: true,
  });
  addFormats(ajv);
  return ajv;
}

/** `/keys/0` → `body.keys[0]` */
function fieldPath(dataVar: string, instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : `${acc}.${part.replace(/~1/g, '/').replace(/~0/g, '~')}`), dataVar);
}

/** One clear sentence naming the field that is wrong and why. */
export function formatSchemaErrors(errors: ErrorObject[], dataVar: string): Error {
  const specific = errors.filter((x) => x.keyword !== 'anyOf' && x.keyword !== 'oneOf');
  // Of a union's branches, the one whose type matched says what is wrong with the value
  // (`urls: []` is an empty array, not "not a string").
  const e = specific.find((x) => x.keyword !== 'type') ?? specific[0] ?? errors[0]!;
  const where = fieldPath(dataVar, e.instancePath);
  const params = e.params as Record<string, unknown>;
  let text: string;
  switch (e.keyword) {
    case 'minItems':
    case 'minLength':
      text = params.limit === 1 ? `${where} must not be empty` : `${where} ${e.message ?? 'is too short'}`;
      break;
    case 'pattern': {
      const description = (e.parentSchema as { description?: unknown } | undefined)?.description;
      text = typeof description === 'string' ? `${where} must be ${description}` : `${where} ${e.message ?? 'is invalid'}`;
      break;
    }
    case 'additionalProperties':
      text = `${where} has an unknown field "${String(params.additionalProperty)}"`;
      break;
    case 'required':
      text = `${where} is missing the field "${String(params.missingProperty)}"`;
      break;
    case 'enum':
      text = `${where} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
      break;
    case 'minProperties':
      text = `${where} must have at least ${String(params.limit)} field(s)`;
      break;
    default:
      text = `${where} ${e.message ?? 'is invalid'}`;
  }
  return new Error(text);
}

/**
 * One Ajv for bodies and one for text (query strings, path parameters) per process, and what
 * they compiled kept by schema: every app a process builds has the same routes (the test
 * suites build hundreds; compiling again cost ~45 ms an app).
 */
const bodyAjv = makeAjv(false);
const textAjv = makeAjv(true);
const validators = new Map<string, ValidateFunction>();

/**
 * How requests are read and checked, for every route: JSON bodies strictly typed, query
 * strings and path parameters coerced from text, unknown fields refused by name, and an empty
 * JSON body taken as no body (POST …/refresh-quota with no options) rather than a parse error.
 */
export const validation = fp(
  async (root: FastifyInstance) => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    app.setValidatorCompiler(({ schema, httpPart }) => {
      // By content, not by object: Fastify hands each app its own copy of a route's schema.
      const text = httpPart === 'body';
      const key = `${text ? 'b' : 't'}${JSON.stringify(schema)}`;
      let fn = validators.get(key);
      if (!fn) validators.set(key, (fn = (text ? bodyAjv : textAjv).compile(schema)));
      return fn;
    });
    const jsonParser = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      const bytes = body as Buffer;
      // Read as bytes, so that bytes that are not UTF-8 are refused rather than stored as U+FFFD.
      if (!isUtf8(bytes)) return done(invalidUtf8(bytes), undefined);
      const text = bytes.toString('utf8');
      if (text.trim() === '') return done(null, undefined);
      jsonParser(req, text, done);
    });
  },
  { name: 'validation' },
);
