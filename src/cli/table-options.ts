import { Command, Option } from 'commander';
import { RoutingFileIO, parseLocationMapping, type LocationMapping } from '../io/routing-file-io.js';
import type { CatalogOptions } from '../catalog/load-table.js';
import { readLimitsFromEnv } from '../service/config.js';
import { setReadLimits } from '../io/limits.js';

/** Options every table-reading command takes: catalog, storage and location mapping. */
export function addTableOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--catalog <uri>', 'catalog holding the table: postgresql://… (JDBC/SQL catalog) or http(s)://… (REST)').env('IPS_CATALOG_URI'))
    .option('--catalog-name <name>', 'catalog_name in the SQL catalog, or the REST warehouse')
    .addOption(new Option('--catalog-token <token>', 'bearer token for a REST catalog').env('IPS_CATALOG_TOKEN'))
    .option('--map-location <FROM=TO>', 'read locations starting with FROM at TO instead (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addOption(new Option('--s3-endpoint <url>', 'S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO').env('IPS_S3_ENDPOINT'))
    .addOption(new Option('--s3-region <region>', 'S3 region').env('AWS_REGION').default('us-east-1'))
    .option('--no-s3-path-style', 'use virtual-hosted-style S3 addressing (default: path style when an endpoint is set)')
    .option('--json', 'print JSON');
}

export interface TableOptions {
  catalog?: string;
  catalogName?: string;
  catalogToken?: string;
  mapLocation: string[];
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  json?: boolean;
}

export function fileIOFrom(opts: TableOptions): RoutingFileIO {
  const mappings: LocationMapping[] = opts.mapLocation.map(parseLocationMapping);
  // The same limits for the catalogs this command talks to (their clients read the process's).
  const limits = readLimitsFromEnv(process.env);
  setReadLimits(limits);
  return new RoutingFileIO({
    mappings,
    limits,
    s3: {
      endpoint: opts.s3Endpoint,
      region: opts.s3Region,
      pathStyle: opts.s3Endpoint ? opts.s3PathStyle !== false : opts.s3PathStyle === false ? false : undefined,
      accessKeyId: process.env['AWS_ACCESS_KEY_ID'],
      secretAccessKey: process.env['AWS_SECRET_ACCESS_KEY'],
      sessionToken: process.env['AWS_SESSION_TOKEN'],
    },
  });
}

export function catalogOptionsFrom(opts: TableOptions): CatalogOptions {
  return { catalogUri: opts.catalog, catalogName: opts.catalogName, catalogToken: opts.catalogToken };
}

