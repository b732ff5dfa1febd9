/** The service's default port, shared by `ips serve` and the CLI clients (which load nothing else of the service). */
export const DEFAULT_PORT = 8742;
