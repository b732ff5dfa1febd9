import { isPrimitive, type PrimitiveType } from './types.js';
import { fieldById, type TableMetadata } from './metadata.js';
import type { PartitionField, PartitionSpec } from './partition-spec.js';
import { parseTransform, resultType, type Transform } from './transforms.js';
import { bigIntFromTwosComplementBE, type Value } from './values.js';

export interface BoundPartitionField {
  field: PartitionField;
  transform: Transform;
  /** Null when the source column is unknown to every schema or not primitive. */
  sourceType: PrimitiveType | null;
  resultType: PrimitiveType;
}

/** A spec's fields with their transforms and types resolved against the table's schemas. */
export function bindSpec(md: TableMetadata, spec: PartitionSpec): BoundPartitionField[] {
  return spec.fields.map((field) => {
    const transform = parseTransform(field.transform);
    const src = fieldById(md, field.sourceId)?.type;
    const sourceType = src && isPrimitive(src) ? src : null;
    const rt: PrimitiveType = sourceType ? resultType(transform, sourceType) : transform.kind === 'day' ? { kind: 'date' } : { kind: 'int' };
    return { field, transform, sourceType, resultType: rt };
  });
}

/** A partition tuple value as the Avro decoder returned it, converted to the in-memory form. */
export function partitionValueFromAvro(type: PrimitiveType, raw: unknown): Value | null {
  if (raw === null || raw === undefined) return null;
  switch (type.kind) {
    case 'int':
    case 'date':
    case 'float':
    case 'double':
      return Number(raw);
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns':
    case 'timestamptz_ns':
      return BigInt(raw as bigint | number);
    case 'decimal':
      return Buffer.isBuffer(raw) ? bigIntFromTwosComplementBE(raw) : BigInt(raw as string);
    case 'uuid':
      return Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw).replace(/-/g, ''), 'hex');
    case 'boolean':
      return Boolean(raw);
    case 'string':
      return String(raw);
    default:
      return Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw));
  }
}
