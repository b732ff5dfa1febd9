import { z } from 'zod';
import { int32Schema } from './types.js';

/** A partition spec as read from metadata; `transform` is the spec's JSON name, e.g. `bucket[16]`. */
export interface PartitionField {
  sourceId: number;
  /** v3 multi-argument transforms; for single-argument fields this is `[sourceId]`. */
  sourceIds: number[];
  fieldId: number;
  name: string;
  transform: string;
}

export interface PartitionSpec {
  specId: number;
  fields: PartitionField[];
}

/** v1 assigned partition field ids from 1000 when writers did not record them. */
export const FIRST_PARTITION_FIELD_ID = 1000;

export const partitionFieldJson = z.object({
  'source-id': int32Schema.optional(),
  'source-ids': z.array(int32Schema).optional(),
  'field-id': int32Schema.optional(),
  name: z.string(),
  transform: z.string(),
}).loose();

export const partitionSpecJson = z.object({
  'spec-id': int32Schema,
  fields: z.array(partitionFieldJson),
}).loose();

export function toPartitionFields(fields: z.infer<typeof partitionFieldJson>[]): PartitionField[] {
  return fields.map((f, i) => {
    const sourceIds = f['source-ids'] ?? (f['source-id'] !== undefined ? [f['source-id']] : []);
    return {
      sourceId: sourceIds[0] ?? -1,
      sourceIds,
      fieldId: f['field-id'] ?? FIRST_PARTITION_FIELD_ID + i,
      name: f.name,
      transform: f.transform,
    };
  });
}
