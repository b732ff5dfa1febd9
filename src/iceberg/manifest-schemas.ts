import type { PrimitiveType } from './types.js';

/**
 * Avro schemas of manifests and manifest lists as Iceberg Java writes them (V1/V2/V3Metadata):
 * the official record names (`manifest_entry`, `r2`, `r102`, `manifest_file`, `r508`,
 * `kX_vY`), a `field-id` on every field, `element-id` on lists, and int-keyed maps as arrays of
 * key/value records with `logicalType: map`. Engines reject files that miss any of these.
 */
type AvroField = { name: string; type: unknown; 'field-id': number; default?: null; doc?: string };

const opt = (name: string, id: number, type: unknown): AvroField => ({ name, type: ['null', type], default: null, 'field-id': id });
const req = (name: string, id: number, type: unknown): AvroField => ({ name, type, 'field-id': id });

function intMap(keyId: number, valueId: number, valueType: 'long' | 'bytes'): unknown {
  return {
    type: 'array',
    items: {
      type: 'record',
      name: `k${keyId}_v${valueId}`,
      fields: [
        { name: 'key', type: 'int', 'field-id': keyId },
        { name: 'value', type: valueType, 'field-id': valueId },
      ],
    },
    logicalType: 'map',
  };
}

export function decimalBytes(precision: number): number {
  // Smallest n with 2^(8n-1) > 10^precision.
  let n = 1;
  while (2n ** BigInt(8 * n - 1) <= 10n ** BigInt(precision)) n++;
  return n;
}

/** Avro type of a partition value of Iceberg type `t` (Java AvroSchemaUtil / TypeToSchema). */
export function avroTypeOf(t: PrimitiveType, name: string): unknown {
  switch (t.kind) {
    case 'boolean': return 'boolean';
    case 'int': return 'int';
    case 'long': return 'long';
    case 'float': return 'float';
    case 'double': return 'double';
    case 'date': return { type: 'int', logicalType: 'date' };
    case 'time': return { type: 'long', logicalType: 'time-micros' };
    case 'timestamp': return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': false };
    case 'timestamptz': return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': true };
    case 'timestamp_ns': return { type: 'long', logicalType: 'timestamp-nanos', 'adjust-to-utc': false };
    case 'timestamptz_ns': return { type: 'long', logicalType: 'timestamp-nanos', 'adjust-to-utc': true };
    case 'string': return 'string';
    case 'uuid': return { type: 'fixed', name: `uuid_fixed_${name}`, size: 16, logicalType: 'uuid' };
    case 'fixed': return { type: 'fixed', name: `fixed_${t.length}_${name}`, size: t.length };
    case 'binary': return 'bytes';
    case 'decimal': return { type: 'fixed', name: `decimal_${t.precision}_${t.scale}_${name}`, size: decimalBytes(t.precision), logicalType: 'decimal', precision: t.precision, scale: t.scale };
    case 'other': return 'bytes';
  }
}

/** Avro-safe field name, the way Java's AvroSchemaUtil.makeCompatibleName escapes characters. */
export function avroName(name: string): string {
  let out = '';
  for (const [i, ch] of Array.from(name).entries()) {
    const ok = i === 0 ? /[A-Za-z_]/.test(ch) : /[A-Za-z0-9_]/.test(ch);
    out += ok ? ch : /\d/.test(ch) ? `_${ch}` : `_x${ch.codePointAt(0)!.toString(16).toUpperCase()}`;
  }
  return out || '_';
}

export interface PartitionFieldSchema {
  name: string;
  fieldId: number;
  type: PrimitiveType;
}

export function partitionRecord(fields: PartitionFieldSchema[]): unknown {
  return {
    type: 'record',
    name: 'r102',
    fields: fields.map((f) => opt(avroName(f.name), f.fieldId, avroTypeOf(f.type, avroName(f.name)))),
  };
}

export function manifestEntrySchema(formatVersion: 1 | 2 | 3, partition: unknown): object {
  const dataFileFields: AvroField[] = [];
  if (formatVersion >= 2) dataFileFields.push(req('content', 134, 'int'));
  dataFileFields.push(
    req('file_path', 100, 'string'),
    req('file_format', 101, 'string'),
    req('partition', 102, partition),
    req('record_count', 103, 'long'),
    req('file_size_in_bytes', 104, 'long'),
  );
  if (formatVersion === 1) dataFileFields.push(req('block_size_in_bytes', 105, 'long'));
  dataFileFields.push(
    opt('column_sizes', 108, intMap(117, 118, 'long')),
    opt('value_counts', 109, intMap(119, 120, 'long')),
    opt('null_value_counts', 110, intMap(121, 122, 'long')),
    opt('nan_value_counts', 137, intMap(138, 139, 'long')),
    opt('lower_bounds', 125, intMap(126, 127, 'bytes')),
    opt('upper_bounds', 128, intMap(129, 130, 'bytes')),
    opt('key_metadata', 131, 'bytes'),
    opt('split_offsets', 132, { type: 'array', items: 'long', 'element-id': 133 }),
  );
  if (formatVersion >= 2) dataFileFields.push(opt('equality_ids', 135, { type: 'array', items: 'int', 'element-id': 136 }));
  dataFileFields.push(opt('sort_order_id', 140, 'int'));
  if (formatVersion >= 3) dataFileFields.push(opt('first_row_id', 142, 'long'));
  if (formatVersion >= 2) dataFileFields.push(opt('referenced_data_file', 143, 'string'));
  if (formatVersion >= 3) dataFileFields.push(opt('content_offset', 144, 'long'), opt('content_size_in_bytes', 145, 'long'));

  const fields: AvroField[] = [req('status', 0, 'int')];
  if (formatVersion === 1) fields.push(req('snapshot_id', 1, 'long'));
  else fields.push(opt('snapshot_id', 1, 'long'), opt('sequence_number', 3, 'long'), opt('file_sequence_number', 4, 'long'));
  fields.push(req('data_file', 2, { type: 'record', name: 'r2', fields: dataFileFields }));
  return { type: 'record', name: 'manifest_entry', fields };
}

export function manifestListSchema(formatVersion: 1 | 2 | 3): object {
  const summary = {
    type: 'array',
    items: {
      type: 'record',
      name: 'r508',
      fields: [
        req('contains_null', 509, 'boolean'),
        opt('contains_nan', 518, 'boolean'),
        opt('lower_bound', 510, 'bytes'),
        opt('upper_bound', 511, 'bytes'),
      ],
    },
    'element-id': 508,
  };
  if (formatVersion === 1) {
    return {
      type: 'record',
      name: 'manifest_file',
      fields: [
        req('manifest_path', 500, 'string'),
        req('manifest_length', 501, 'long'),
        req('partition_spec_id', 502, 'int'),
        req('added_snapshot_id', 503, 'long'),
        opt('added_files_count', 504, 'int'),
        opt('existing_files_count', 505, 'int'),
        opt('deleted_files_count', 506, 'int'),
        opt('partitions', 507, summary),
        opt('added_rows_count', 512, 'long'),
        opt('existing_rows_count', 513, 'long'),
        opt('deleted_rows_count', 514, 'long'),
      ],
    };
  }
  const fields: AvroField[] = [
    req('manifest_path', 500, 'string'),
    req('manifest_length', 501, 'long'),
    req('partition_spec_id', 502, 'int'),
    req('content', 517, 'int'),
    req('sequence_number', 515, 'long'),
    req('min_sequence_number', 516, 'long'),
    req('added_snapshot_id', 503, 'long'),
    req('added_files_count', 504, 'int'),
    req('existing_files_count', 505, 'int'),
    req('deleted_files_count', 506, 'int'),
    req('added_rows_count', 512, 'long'),
    req('existing_rows_count', 513, 'long'),
    req('deleted_rows_count', 514, 'long'),
    opt('partitions', 507, summary),
    opt('key_metadata', 519, 'bytes'),
  ];
  if (formatVersion >= 3) fields.push(opt('first_row_id', 520, 'long'));
  return { type: 'record', name: 'manifest_file', fields };
}
