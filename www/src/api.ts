// The demo's calls to waas-server. Same origin by default: the server serves this page.

/** `GET /v1/version`, as waas_api::VersionInfo serializes it. */
export interface VersionInfo {
  name: string;
  version: string;
  apiVersion: string;
}

/** The server's JSON error body, waas_api::ErrorBody. */
interface ErrorBody {
  code: string;
  message: string;
  status: number;
}

/** A failed API call, carrying the server's stable error code. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { Accept: 'application/json' } });
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = body as Partial<ErrorBody> | undefined;
    throw new ApiError(
      error?.code ?? 'UNKNOWN',
      error?.message ?? `HTTP ${response.status} from ${path}`,
      response.status,
    );
  }
  return body as T;
}

export function fetchServerVersion(): Promise<VersionInfo> {
  return getJson<VersionInfo>('/v1/version');
}
