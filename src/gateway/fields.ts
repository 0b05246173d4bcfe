/**
 * The canonical form of a request body: the fields a check or a price depends on, in the one
 * form the checks read and Tavily is sent. Tavily's API (FastAPI, pydantic in lax mode) takes
 * `"50"` for a whole number and `"true"` for a flag, and refuses `[50]`; the gateway does the
 * same, so the number it checks is the number it forwards. Choices (`search_depth`, `model`, …)
 * are compared without regard to case or surrounding space and forwarded in lower case; a
 * value the gateway does not know passes on (Tavily adds values often) and is priced at the
 * most its endpoint can cost.
 */

type Json = Record<string, unknown>;

/** How one field is made canonical. */
export type FieldRule =
  /** A whole number of at least `min` (a number, or a numeric string). */
  | { readonly kind: 'count'; readonly min: number }
  /** One of some words (any case, surrounding space trimmed); other words pass on in lower case. */
  | { readonly kind: 'choice'; readonly values: readonly string[] }
  /** true or false (also "true" / "false" and 1 / 0, as Tavily takes them). */
  | { readonly kind: 'flag' }
  /** Text. */
  | { readonly kind: 'text' };

export type Fields = Readonly<Record<string, FieldRule>>;

export const count = (min = 0): FieldRule => ({ kind: 'count', min });
export const choice = (...values: string[]): FieldRule => ({ kind: 'choice', values });
export const flag = (): FieldRule => ({ kind: 'flag' });
export const text = (): FieldRule => ({ kind: 'text' });

const shown = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
};

/** The canonical value, or what is wrong with it (a sentence naming the field). */
function canonicalValue(name: string, rule: FieldRule, v: unknown): { value: unknown } | { error: string } {
  switch (rule.kind) {
    case 'count': {
      let n: number = Number.NaN;
      if (typeof v === 'number') n = v;
      else if (typeof v === 'string' && /^\s*[+-]?\d{1,15}\s*$/.test(v)) n = Number(v);
      if (!Number.isInteger(n) || n < rule.min) return { error: `${name} must be a whole number of at least ${rule.min} (it was ${shown(v)})` };
      return { value: n };
    }
    case 'choice': {
      if (typeof v !== 'string') return { error: `${name} must be one of ${rule.values.join(', ')} (it was ${shown(v)})` };
      return { value: v.trim().toLowerCase() };
    }
    case 'flag': {
      if (typeof v === 'boolean') return { value: v };
      const w = typeof v === 'string' ? v.trim().toLowerCase() : v;
      if (w === 'true' || w === 1) return { value: true };
      if (w === 'false' || w === 0) return { value: false };
      return { error: `${name} must be true or false (it was ${shown(v)})` };
    }
    case 'text':
      return typeof v === 'string' ? { value: v } : { error: `${name} must be text (it was ${shown(v)})` };
  }
}

/**
 * The body with its listed fields in canonical form (the same object when nothing changes), or
 * what is wrong with the first field that cannot be. A field that is absent or null is left as
 * it is: Tavily applies its default, and so do the prices.
 */
export function canonicalBody(fields: Fields, body: Json): { body: Json } | { error: string } {
  let out = body;
  for (const name in fields) {
    const v = body[name];
    if (v === undefined || v === null) continue;
    const c = canonicalValue(name, fields[name]!, v);
    if ('error' in c) return c;
    if (c.value !== v) {
      if (out === body) out = { ...body };
      out[name] = c.value;
    }
  }
  return { body: out };
}
