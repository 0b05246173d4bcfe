/** An admin API error: rendered as {"error": {"code", "message"}} with its status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** Answer with Connection: close (the rest of the request body is not read). */
    readonly close = false,
  ) {
    super(message);
  }
}
