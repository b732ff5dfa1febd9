import { IpsError } from '../errors.js';
import type { AvroSchemaNode } from './avro.js';

/**
 * Iceberg identifies Avro fields by their `field-id` annotation, never by name: real files use
 * older names (`added_data_files_count`) and other letter case. These helpers resolve a
 * writer schema's field names by id, once per schema.
 */
export interface AvroRecordSchema {
  type: 'record';
  name: string;
  fields: { name: string; type: AvroSchemaNode; 'field-id'?: number | string }[];
}

/** The record inside `["null", record]` (or the record itself). */
export function unwrapRecord(node: AvroSchemaNode | undefined, where: string): AvroRecordSchema | null {
  if (node === undefined) return null;
  if (Array.isArray(node)) {
    for (const branch of node) {
      const r = unwrapRecord(branch, where);
      if (r) return r;
    }
    return null;
  }
  if (typeof node === 'object' && node !== null && node['type'] === 'record') return node as unknown as AvroRecordSchema;
  if (typeof node === 'object' && node !== null && typeof node['type'] === 'object') return unwrapRecord(node['type'] as AvroSchemaNode, where);
  return null;
}

export function fieldsById(record: AvroRecordSchema): Map<number, { name: string; type: AvroSchemaNode }> {
  const out = new Map<number, { name: string; type: AvroSchemaNode }>();
  for (const f of record.fields) {
    if (f['field-id'] !== undefined) out.set(Number(f['field-id']), { name: f.name, type: f.type });
  }
  return out;
}

export function requireField(ids: Map<number, { name: string }>, id: number, label: string, where: string): string {
  const f = ids.get(id);
  if (!f) throw new IpsError('INVALID_MANIFEST', `${where}: required field ${label} (field-id ${id}) is missing from the Avro schema`);
  return f.name;
}

/** Name of field `id`, or null when this writer did not write it (optional / older versions). */
export function optionalField(ids: Map<number, { name: string }>, id: number): string | null {
  return ids.get(id)?.name ?? null;
}

/** Iceberg int-keyed maps are Avro arrays of {key, value} records; read them into a Map. */
export function readIntKeyedMap<V>(raw: unknown): Map<number, V> | null {
  if (raw === null || raw === undefined) return null;
  const out = new Map<number, V>();
  if (Array.isArray(raw)) {
    for (const kv of raw as Record<string, unknown>[]) {
      const vals = Object.values(kv);
      out.set(Number(vals[0]), vals[1] as V);
    }
  } else if (typeof raw === 'object') {
    // A native Avro map (string keys) from a non-conforming writer.
    for (const [k, v] of Object.entries(raw as Record<string, V>)) out.set(Number(k), v);
  }
  return out;
}
