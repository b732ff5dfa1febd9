// Names and defaults shared by the global setup (main vitest process) and env.ts (test workers).

/** Values the global setup hands to every test file. */
export interface IpsTestEnv {
  /** postgres://user:pass@host:port/db */
  pgUrl: string;
  s3Endpoint: string;
  s3Region: string;
  s3AccessKey: string;
  s3SecretKey: string;
  s3Bucket: string;
  /** The venv's python interpreter (absolute path). */
  python: string;
  /** Absolute paths of the Spark/Iceberg jars. */
  sparkJars: string[];
  /** JAVA_HOME for pyspark. */
  javaHome: string;
  /** ${IPS_CACHE_DIR:-$HOME/.cache/ips} */
  cacheDir: string;
  /** 'compose' when a docker-compose stack was used, 'local' when the setup started its own servers. */
  services: 'compose' | 'local';
}

/** process.env names, one per IpsTestEnv field. */
export const ENV_NAMES = {
  pgUrl: 'IPS_TEST_PG_URL',
  s3Endpoint: 'IPS_TEST_S3_ENDPOINT',
  s3Region: 'IPS_TEST_S3_REGION',
  s3AccessKey: 'IPS_TEST_S3_ACCESS_KEY',
  s3SecretKey: 'IPS_TEST_S3_SECRET_KEY',
  s3Bucket: 'IPS_TEST_S3_BUCKET',
  python: 'IPS_TEST_PYTHON',
  sparkJars: 'IPS_TEST_SPARK_JARS',
  javaHome: 'JAVA_HOME',
  cacheDir: 'IPS_CACHE_DIR',
  services: 'IPS_TEST_SERVICES',
} as const satisfies Record<keyof IpsTestEnv, string>;

/** Credentials of docker-compose.yml; the local servers use the same ones. */
export const TEST_CREDENTIALS = {
  pgUser: 'ips',
  pgPassword: 'ips',
  pgDatabase: 'ips',
  s3AccessKey: 'ipsminio',
  s3SecretKey: 'ipsminio-secret',
  s3Region: 'us-east-1',
  s3Bucket: 'ips-test',
} as const;

export const COMPOSE_ENDPOINTS = {
  pgUrl: `postgres://${TEST_CREDENTIALS.pgUser}:${TEST_CREDENTIALS.pgPassword}@localhost:5432/${TEST_CREDENTIALS.pgDatabase}`,
  s3Endpoint: 'http://localhost:9000',
} as const;

/** Key under which the global setup `provide`s the env to workers. */
export const PROVIDE_KEY = 'ipsTestEnv';

export function envToProcessEnv(env: IpsTestEnv): Record<string, string> {
  return {
    [ENV_NAMES.pgUrl]: env.pgUrl,
    [ENV_NAMES.s3Endpoint]: env.s3Endpoint,
    [ENV_NAMES.s3Region]: env.s3Region,
    [ENV_NAMES.s3AccessKey]: env.s3AccessKey,
    [ENV_NAMES.s3SecretKey]: env.s3SecretKey,
    [ENV_NAMES.s3Bucket]: env.s3Bucket,
    [ENV_NAMES.python]: env.python,
    [ENV_NAMES.sparkJars]: env.sparkJars.join(','),
    [ENV_NAMES.javaHome]: env.javaHome,
    [ENV_NAMES.cacheDir]: env.cacheDir,
    [ENV_NAMES.services]: env.services,
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    ipsTestEnv: IpsTestEnv;
  }
}

/** Tail buffer of a child's output, for error messages. */
export class OutputTail {
  private text = '';
  constructor(private readonly max = 16_000) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text.slice(-this.max);
  }
}
