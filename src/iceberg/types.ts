import { z } from 'zod';
import { IpsError } from '../errors.js';

/** Iceberg's type system (spec "Schemas and Data Types"), parsed from metadata JSON. */
export type PrimitiveType =
  | { kind: 'boolean' }
  | { kind: 'int' }
  | { kind: 'long' }
  | { kind: 'float' }
  | { kind: 'double' }
  | { kind: 'decimal'; precision: number; scale: number }
  | { kind: 'date' }
  | { kind: 'time' }
  | { kind: 'timestamp' }
  | { kind: 'timestamptz' }
  | { kind: 'timestamp_ns' }
  | { kind: 'timestamptz_ns' }
  | { kind: 'string' }
  | { kind: 'uuid' }
  | { kind: 'fixed'; length: number }
  | { kind: 'binary' }
  /** v3 `unknown`, `variant`, geo types: carried through, never bounded. */
  | { kind: 'other'; name: string };

export interface NestedField {
  id: number;
  name: string;
  required: boolean;
  type: IcebergType;
  doc?: string | undefined;
}

export interface StructType {
  kind: 'struct';
  fields: NestedField[];
}
export interface ListType {
  kind: 'list';
  elementId: number;
  elementRequired: boolean;
  element: IcebergType;
}
export interface MapType {
  kind: 'map';
  keyId: number;
  key: IcebergType;
  valueId: number;
  valueRequired: boolean;
  value: IcebergType;
}
export type IcebergType = PrimitiveType | StructType | ListType | MapType;

export interface Schema {
  schemaId: number;
  identifierFieldIds: number[];
  struct: StructType;
}

const SIMPLE = new Set([
  'boolean', 'int', 'long', 'float', 'double', 'date', 'time', 'timestamp', 'timestamptz',
  'timestamp_ns', 'timestamptz_ns', 'string', 'uuid', 'binary',
]);

export function parsePrimitive(name: string): PrimitiveType {
  const s = name.trim();
  if (SIMPLE.has(s)) return { kind: s } as PrimitiveType;
  const dec = /^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$/.exec(s);
  if (dec) return { kind: 'decimal', precision: Number(dec[1]), scale: Number(dec[2]) };
  const fixed = /^fixed\s*\[\s*(\d+)\s*\]$/.exec(s);
  if (fixed) return { kind: 'fixed', length: Number(fixed[1]) };
  return { kind: 'other', name: s };
}

export function typeToString(t: IcebergType): string {
  switch (t.kind) {
    case 'decimal': return `decimal(${t.precision},${t.scale})`;
    case 'fixed': return `fixed[${t.length}]`;
    case 'other': return t.name;
    case 'struct': return `struct<${t.fields.map((f) => `${f.name}: ${typeToString(f.type)}`).join(', ')}>`;
    case 'list': return `list<${typeToString(t.element)}>`;
    case 'map': return `map<${typeToString(t.key)}, ${typeToString(t.value)}>`;
    default: return t.kind;
  }
}

export function isPrimitive(t: IcebergType): t is PrimitiveType {
  return t.kind !== 'struct' && t.kind !== 'list' && t.kind !== 'map';
}

// Integers arrive as bigint from the lossless JSON parser; ids and lengths are 32-bit.
const int32 = z.union([z.bigint(), z.number()]).transform((v, ctx) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < -2147483648 || n > 2147483647) {
    ctx.addIssue({ code: 'custom', message: `expected a 32-bit integer, got ${String(v)}` });
    return z.NEVER;
  }
  return n;
});

const fieldJson = z.object({
  id: int32,
  name: z.string(),
  required: z.boolean(),
  type: z.unknown(),
  doc: z.string().optional(),
}).loose();

const structJson = z.object({ type: z.literal('struct'), fields: z.array(fieldJson) }).loose();
const listJson = z.object({
  type: z.literal('list'),
  'element-id': int32,
  'element-required': z.boolean(),
  element: z.unknown(),
}).loose();
const mapJson = z.object({
  type: z.literal('map'),
  'key-id': int32,
  key: z.unknown(),
  'value-id': int32,
  'value-required': z.boolean(),
  value: z.unknown(),
}).loose();

function fail(path: string, issue: string): never {
  throw new IpsError('INVALID_METADATA', `invalid schema at ${path}: ${issue}`);
}

function parseWith<T>(schema: z.ZodType<T>, json: unknown, path: string): T {
  const r = schema.safeParse(json);
  if (!r.success) fail(path, r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return r.data;
}

export function parseType(json: unknown, path = 'type'): IcebergType {
  if (typeof json === 'string') return parsePrimitive(json);
  if (json === null || typeof json !== 'object') fail(path, 'expected a type name or a nested type object');
  const kind = (json as { type?: unknown }).type;
  if (kind === 'struct') return parseStruct(json, path);
  if (kind === 'list') {
    const l = parseWith(listJson, json, path);
    return { kind: 'list', elementId: l['element-id'], elementRequired: l['element-required'], element: parseType(l.element, `${path}.element`) };
  }
  if (kind === 'map') {
    const m = parseWith(mapJson, json, path);
    return {
      kind: 'map', keyId: m['key-id'], key: parseType(m.key, `${path}.key`),
      valueId: m['value-id'], valueRequired: m['value-required'], value: parseType(m.value, `${path}.value`),
    };
  }
  return fail(path, `unknown nested type ${JSON.stringify(String(kind))}`);
}

export function parseStruct(json: unknown, path = 'struct'): StructType {
  const s = parseWith(structJson, json, path);
  return {
    kind: 'struct',
    fields: s.fields.map((f) => ({
      id: f.id, name: f.name, required: f.required, doc: f.doc,
      type: parseType(f.type, `${path}.${f.name}`),
    })),
  };
}

const schemaJson = z.object({
  type: z.literal('struct'),
  'schema-id': int32.optional(),
  'identifier-field-ids': z.array(int32).optional(),
  fields: z.array(z.unknown()),
}).loose();

export function parseSchema(json: unknown, path = 'schema'): Schema {
  const s = parseWith(schemaJson, json, path);
  return {
    schemaId: s['schema-id'] ?? 0,
    identifierFieldIds: s['identifier-field-ids'] ?? [],
    struct: parseStruct(json, path),
  };
}

export interface IndexedField {
  field: NestedField;
  /** Dotted name from the root, e.g. `location.lat`. */
  path: string;
}

/** Every field id of a schema (struct fields, list elements, map keys and values) to its field. */
export function indexById(struct: StructType): Map<number, IndexedField> {
  const out = new Map<number, IndexedField>();
  const visit = (t: IcebergType, prefix: string): void => {
    if (t.kind === 'struct') {
      for (const f of t.fields) {
        const path = prefix ? `${prefix}.${f.name}` : f.name;
        out.set(f.id, { field: f, path });
        visit(f.type, path);
      }
    } else if (t.kind === 'list') {
      const path = `${prefix}.element`;
      out.set(t.elementId, { field: { id: t.elementId, name: 'element', required: t.elementRequired, type: t.element }, path });
      visit(t.element, path);
    } else if (t.kind === 'map') {
      out.set(t.keyId, { field: { id: t.keyId, name: 'key', required: true, type: t.key }, path: `${prefix}.key` });
      out.set(t.valueId, { field: { id: t.valueId, name: 'value', required: t.valueRequired, type: t.value }, path: `${prefix}.value` });
      visit(t.key, `${prefix}.key`);
      visit(t.value, `${prefix}.value`);
    }
  };
  visit(struct, '');
  return out;
}

export { int32 as int32Schema };
