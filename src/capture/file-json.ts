import { describeError } from '../errors.js';
import { fieldById, specById, type TableMetadata } from '../iceberg/metadata.js';
import type { DataFile } from '../iceberg/manifest.js';
import { bindSpec, partitionValueFromAvro, type BoundPartitionField } from '../iceberg/partition-values.js';
import { isPrimitive } from '../iceberg/types.js';
import { decodeBinaryValue, toJsonValue, type JsonValue } from '../iceberg/values.js';
import type { FileChange } from './snapshot-changes.js';

/** The JSON form of a data or delete file, shared by `ips inspect --json` and `ips changes --json`. */
export interface FileJson {
  file_path: string;
  content: 'data' | 'position_deletes' | 'equality_deletes';
  file_format: string;
  record_count: string;
  file_size_in_bytes: string;
  sequence_number: string | null;
  file_sequence_number: string | null;
  spec_id: number;
  partition: Record<string, JsonValue>;
  lower_bounds: Record<string, JsonValue>;
  upper_bounds: Record<string, JsonValue>;
  referenced_data_file?: string;
  /** Deletion vectors: where the blob sits in its Puffin file (several DVs share one file). */
  content_offset?: string;
  content_size_in_bytes?: string;
  equality_ids?: number[];
  first_row_id?: string;
}

export const CONTENT_NAMES = ['data', 'position_deletes', 'equality_deletes'] as const;

/** Turns decoded files into their JSON form for one table; caches bound partition specs. */
export class FileDescriber {
  private readonly specs = new Map<number, BoundPartitionField[]>();
  readonly warnings: string[] = [];

  constructor(private readonly md: TableMetadata) {}

  boundSpec(specId: number): BoundPartitionField[] {
    let b = this.specs.get(specId);
    if (!b) {
      b = bindSpec(this.md, specById(this.md, specId));
      this.specs.set(specId, b);
    }
    return b;
  }

  partitionJson(specId: number, partition: Map<number, unknown>): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {};
    for (const pf of this.boundSpec(specId)) {
      out[pf.field.name] = toJsonValue(pf.resultType, partitionValueFromAvro(pf.resultType, partition.get(pf.field.fieldId)));
    }
    return out;
  }

  boundsJson(df: DataFile, which: 'lower' | 'upper'): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {};
    const raw = which === 'lower' ? df.lowerBounds : df.upperBounds;
    if (!raw) return out;
    for (const [id, bytes] of raw) {
      const t = fieldById(this.md, id)?.type;
      if (!t || !isPrimitive(t) || t.kind === 'other') continue;
      try {
        out[String(id)] = toJsonValue(t, decodeBinaryValue(t, bytes));
      } catch (e) {
        this.warnings.push(`${df.filePath}: ${which} bound of field ${id} not decoded: ${describeError(e)}`);
      }
    }
    return out;
  }

  describe(change: FileChange): FileJson {
    const { entry, manifest } = change;
    const df = entry.dataFile;
    const f: FileJson = {
      file_path: df.filePath,
      content: CONTENT_NAMES[df.content],
      file_format: df.fileFormat,
      record_count: df.recordCount.toString(),
      file_size_in_bytes: df.fileSizeInBytes.toString(),
      sequence_number: entry.sequenceNumber?.toString() ?? null,
      file_sequence_number: entry.fileSequenceNumber?.toString() ?? null,
      spec_id: manifest.partitionSpecId,
      partition: this.partitionJson(manifest.partitionSpecId, df.partition),
      lower_bounds: this.boundsJson(df, 'lower'),
      upper_bounds: this.boundsJson(df, 'upper'),
    };
    if (df.referencedDataFile !== null) f.referenced_data_file = df.referencedDataFile;
    if (df.contentOffset !== null) f.content_offset = df.contentOffset.toString();
    if (df.contentSizeInBytes !== null) f.content_size_in_bytes = df.contentSizeInBytes.toString();
    if (df.equalityIds !== null) f.equality_ids = df.equalityIds;
    if (df.firstRowId !== null) f.first_row_id = df.firstRowId.toString();
    return f;
  }
}
